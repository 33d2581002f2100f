"""The OpenAPI document is generated from the declarations that the handlers enforce: it
lists exactly the aiohttp routes under /v1/, with their methods."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.api import Param, Reply, RequestContext, Route, Scope
from gateway.api.routes import ALL_ROLES
from tests.api.conftest import Api

REQUIRED_TOP = ("openapi", "info", "paths")


async def _doc(api: Api) -> dict[str, Any]:
    got = await api.call("GET", "/v1/openapi.json")
    assert got.status == 200
    assert got.headers["Content-Type"].startswith("application/json")
    doc: dict[str, Any] = json.loads(got.text)
    return doc


async def test_document_has_the_openapi_top_level_fields(api: Api) -> None:
    doc = await _doc(api)
    for key in REQUIRED_TOP:
        assert key in doc
    assert doc["openapi"].startswith("3.1.")
    assert doc["info"]["title"] and doc["info"]["version"]
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (path, method)
            for status in op["responses"]:
                assert status.isdigit(), (path, method, status)
    text = json.dumps(doc)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        name = ref.removeprefix("#/components/schemas/")
        assert name in doc["components"]["schemas"], ref


async def test_document_lists_exactly_the_served_v1_routes(api: Api) -> None:
    doc = await _doc(api)
    served = {(r.method, r.resource.canonical) for r in api.app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/v1/")}
    documented = {(method.upper(), path) for path, ops in doc["paths"].items()
                  for method in ops}
    assert served == documented
    assert ("GET", "/v1/openapi.json") in documented
    # and the health routes stay outside the API
    assert not any(path in doc["paths"] for path in ("/healthz", "/readyz", "/metrics"))


async def test_parameters_in_the_document_match_the_paths(api: Api) -> None:
    doc = await _doc(api)
    for path, ops in doc["paths"].items():
        in_path = {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == in_path, path


async def test_unknown_v1_paths_and_methods_answer_json(api: Api) -> None:
    missing = await api.call("GET", "/v1/no-such-thing")
    assert missing.status == 404 and missing.body["error"]["code"] == "route_not_found"
    wrong = await api.call("PATCH", "/v1/calls")
    assert wrong.status == 405 and wrong.body["error"]["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["Allow"]
    health = await api.call("GET", "/healthz")
    assert health.status == 200


async def _noop(ctx: RequestContext) -> Reply:
    return Reply({})


def test_a_declaration_cannot_promise_what_is_not_enforced() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        Route("PUT", "/v1/x/{tenant}", "x", "x", "x", _noop, ALL_ROLES, Scope.TENANT,
              {"type": "object"}, path_params={"tenant": Param({"type": "string"}, "", "a")},
              body={"type": "object", "oneOf": []}, body_example={})
    with pytest.raises(ValueError, match="example"):
        Route("PUT", "/v1/x/{tenant}", "x", "x", "x", _noop, ALL_ROLES, Scope.TENANT,
              {"type": "object"}, path_params={"tenant": Param({"type": "string"}, "", "a")},
              body={"type": "object", "required": ["n"]}, body_example={})
    with pytest.raises(ValueError, match="tenant-scoped or site-only"):
        Route("PUT", "/v1/x", "x", "x", "x", _noop, ALL_ROLES, Scope.ANY_TOKEN,
              {"type": "object"})


async def test_the_cdr_export_documents_its_csv_and_json_lines_answers(api: Api) -> None:
    doc = await _doc(api)
    content = doc["paths"]["/v1/cdrs"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/csv", "application/x-ndjson"}
    patch = doc["paths"]["/v1/tenants/{tenant}/campaigns/{campaign}"]["patch"]
    assert "supervisor" in patch["x-callgate-roles"]
    assert "own tokens" in patch["description"]

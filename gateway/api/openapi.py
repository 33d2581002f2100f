"""The OpenAPI 3.1 document, generated from the route declarations alone.

Each operation also carries `x-callgate-roles` (roles allowed) and `x-callgate-scope`
(how tenant data is limited, see gateway.api.access), so a reader sees the access rule
the gateway enforces, and the errors each route can answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.api.access import Scope
from gateway.api.errors import ERROR_SCHEMA
from gateway.api.routes import Route

_SCOPE_TEXT = {
    Scope.PUBLIC: "No token needed.",
    Scope.ANY_TOKEN: "Any valid token; the data belongs to no tenant.",
    Scope.SITE: "Site-wide tokens only (tenant '*').",
    Scope.TENANT: "The {tenant} in the path must be the token's tenant or, for a reseller, "
                  "beneath it (changes: site-wide tokens, or a reseller for tenants beneath "
                  "it); otherwise 403 tenant_forbidden.",
    Scope.FILTERED: "Lists only what belongs to tenants the token may see; ?tenant= narrows "
                    "to one of them (another tenant: 403 tenant_forbidden).",
}
_OWN_WRITES = "The tenant's own tokens (of the roles listed) may change it as well."
_ERROR_TEXT = {
    "401": "No token, or not a valid one (codes: token_missing, token_invalid).",
    "403": "Wrong role or another tenant's data (codes: role_forbidden, "
           "site_token_required, tenant_forbidden, field_forbidden).",
    "404": "Nothing of that name, or not visible to this token.",
    "409": "The state of what the path names forbids this change (e.g. card_state, "
           "campaign_exists). Nothing was changed.",
    "422": "Bad input; `field` names it. Nothing was changed.",
    "503": "A backend (Redis) or a service this route needs is unavailable "
           "(codes: backend_unavailable, <service>_unavailable).",
}


def _error(status: str) -> dict[str, Any]:
    return {"description": _ERROR_TEXT[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
        "x-callgate-roles": sorted(r.value for r in route.roles),
        "x-callgate-scope": route.scope.value,
        "description": " ".join(x for x in (route.description, _SCOPE_TEXT[route.scope],
                                            _OWN_WRITES if route.tenant_writes else "")
                                if x),
    }
    params: list[dict[str, Any]] = []
    for name, p in route.path_params.items():
        params.append({"name": name, "in": "path", "required": True,
                       "description": p.description, "schema": dict(p.schema),
                       "example": p.example})
    for name, p in route.query.items():
        params.append({"name": name, "in": "query", "required": p.required,
                       "description": p.description, "schema": dict(p.schema),
                       "example": p.example})
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": route.body, "example": route.body_example}}}
    content: dict[str, Any] = {"application/json": {"schema": route.response}}
    for media in route.media:
        content[media] = {"schema": {"type": "string"}}
    responses: dict[str, Any] = {str(route.status): {
        "description": "OK" if route.status < 300 else "Created", "content": content}}
    errors = []
    if route.scope is not Scope.PUBLIC:
        errors += ["401", "403"]
    if route.not_found:
        errors.append("404")
    if route.conflict:
        errors.append("409")
    if route.path_params or route.query or route.body is not None:
        errors.append("422")
    if route.scope is not Scope.PUBLIC or route.needs:
        errors.append("503")
    for status in errors:
        responses[status] = _error(status)
    op["responses"] = responses
    op["security"] = [] if route.scope is Scope.PUBLIC else [{"bearer": []}]
    return op


def build_openapi(routes: Iterable[Route], *, site: str, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "callgate API",
            "version": version,
            "description": f"Call-control gateway of site {site!r}. Errors are "
                           '{"error": {"code", "message", "field"}}; match on `code`.',
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "Authorization: Bearer cg_<id>_<secret> (from POST /v1/tokens "
                               "or `callgate token create`)"}},
            "schemas": {"Error": ERROR_SCHEMA},
        },
    }

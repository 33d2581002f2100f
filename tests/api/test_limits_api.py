"""Changing limits over HTTP: every field checked before anything is written (a request
with one bad field changes nothing), the field at fault named, and the change seen by the
very next call decision."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.api.validation import validate
from tests.api.conftest import SUB, A, Api, B, out_call, redis_state


async def _site(api: Api) -> str:
    return await api.token("operator", "*")


def _route(api: Api, name: str) -> Any:
    return next(r for r in api.routes if r.name == name)


@pytest.mark.parametrize(("body", "field", "code"), [
    ({"total": 5, "outbound": -1}, "outbound", "field_out_of_range"),
    ({"total": 5, "inbound": "7"}, "inbound", "field_type"),
    ({"total": 5, "inbound": True}, "inbound", "field_type"),
    ({"total": 5, "inbound": 2.5}, "inbound", "field_type"),
    ({"total": 5, "overflow": "maybe"}, "overflow", "field_not_allowed"),
    ({"total": 5, "totl": 3}, "totl", "field_unknown"),
    ({"total": 5, "hard_max": {"total": 4}}, "hard_max.total", "hard_max_below_limit"),
    ({"total": 5, "hard_max": {"totl": 9}}, "hard_max.totl", "field_unknown"),
    ({"outbound": 5, "hard_max": {"total": 9}}, "hard_max.total", "hard_max_below_limit"),
    ({"total": 5, "reseller": "bad name"}, "reseller", "field_format"),
    ({"total": 5, "reseller": A}, "reseller", "reseller_invalid"),
    ({}, None, "field_required"),
])
async def test_one_bad_field_changes_nothing(world: Api, body: dict[str, Any],
                                             field: str | None, code: str) -> None:
    token = await _site(world)
    before = await redis_state(world.redis)
    shown = await world.call("GET", f"/v1/limits/tenants/{A}", token)
    got = await world.call("PUT", f"/v1/limits/tenants/{A}", token, json_body=body)
    assert got.status == 422, got.text
    assert got.body["error"]["code"] == code
    assert got.body["error"].get("field") == field
    assert got.body["error"]["message"]
    assert await redis_state(world.redis) == before
    assert (await world.call("GET", f"/v1/limits/tenants/{A}", token)).body == shown.body


async def test_a_reseller_loop_is_refused_before_anything_is_written(world: Api) -> None:
    token = await _site(world)
    before = await redis_state(world.redis)
    got = await world.call("PUT", "/v1/limits/tenants/resell", token,
                           json_body={"total": 1, "reseller": "resell-subsub"})
    assert got.status == 422 and got.body["error"]["field"] == "reseller"
    assert await redis_state(world.redis) == before


async def test_bad_json_and_bad_path_names_are_422(world: Api) -> None:
    token = await _site(world)
    got = await world.call("PUT", f"/v1/limits/tenants/{A}", token, raw=b"{total: 5")
    assert got.status == 422 and got.body["error"]["code"] == "invalid_json"
    got = await world.call("PUT", f"/v1/limits/tenants/{A}", token, raw=b"")
    assert got.status == 422 and got.body["error"]["code"] == "body_required"
    got = await world.call("PUT", f"/v1/limits/tenants/{A}", token, raw=b"[1]")
    assert got.status == 422 and got.body["error"]["code"] == "field_type"
    got = await world.call("GET", "/v1/limits/tenants/a%20b", token)
    assert got.status == 422 and got.body["error"]["field"] == "tenant"
    got = await world.call("GET", "/v1/calls", token, params={"tenant": A, "page": "2"})
    assert got.status == 422 and got.body["error"] == {
        "code": "field_unknown", "field": "page", "message": got.body["error"]["message"]}


async def test_put_changes_only_the_fields_given_and_applies_to_the_next_call(
        api: Api) -> None:
    token = await _site(api)
    first = await api.call("PUT", f"/v1/limits/tenants/{B}", token,
                           json_body={"outbound": 1, "total": 4})
    assert first.status == 200
    validate(_route(api, "put_tenant_limits").response, first.body)
    assert first.body["outbound"]["limit"] == 1 and first.body["total"]["limit"] == 4
    assert (await api.limits.authorize(out_call(B, "1.1"))).allowed
    refused = await api.limits.authorize(out_call(B, "1.2"))
    assert not refused.allowed and refused.reason.value == "tenant_limit"
    second = await api.call("PUT", f"/v1/limits/tenants/{B}", token,
                            json_body={"outbound": 1, "hard_max": {"outbound": 2},
                                       "overflow": "surcharge"})
    assert second.status == 200
    assert second.body["total"]["limit"] == 4  # untouched
    assert second.body["outbound"]["hard_max"] == 2 and second.body["overflow"] == "surcharge"
    surcharged = await api.limits.authorize(out_call(B, "1.3"))
    assert surcharged.allowed and surcharged.surcharge
    cleared = await api.call("PUT", f"/v1/limits/tenants/{B}", token,
                             json_body={"outbound": None, "hard_max": {"outbound": None}})
    assert cleared.body["outbound"]["limit"] is None
    assert cleared.body["outbound"]["hard_max"] is None


async def test_trunk_channels_from_a_hardware_profile(api: Api) -> None:
    token = await _site(api)
    got = await api.call("PUT", "/v1/limits/trunks/span1", token,
                         json_body={"profile": "sangoma-a101-t1", "cps": 2.5})
    assert got.status == 200, got.text
    assert got.body["limit"] == 23 and got.body["cps"] == 2.5
    kept = await api.call("PUT", "/v1/limits/trunks/span1", token, json_body={"cps": None})
    assert kept.body["limit"] == 23 and kept.body["cps"] is None
    before = await redis_state(api.redis)
    for body, code in (({"profile": "no-such-box"}, "unknown_profile"),
                       ({"profile": "yealink-t46u"}, "profile_kind"),
                       ({"profile": "sangoma-a101-e1", "channels": 30}, "conflicting_fields"),
                       ({"cps": 0}, "field_out_of_range")):
        bad = await api.call("PUT", "/v1/limits/trunks/span1", token, json_body=body)
        assert bad.status == 422 and bad.body["error"]["code"] == code, body
        assert bad.body["error"]["field"] in body
    assert await redis_state(api.redis) == before


async def test_desk_phone_appearances_from_its_profile(api: Api) -> None:
    token = await _site(api)
    got = await api.call("PUT", f"/v1/limits/tenants/{A}/devices/acme-6001", token,
                         json_body={"profile": "grandstream-gxp2170"})
    assert got.status == 200 and got.body["limit"] == 12
    assert got.body["tenant"] == A and got.body["kind"] == "device"
    listed = await api.call("GET", "/v1/limits/devices", token, params={"tenant": A})
    assert [d["name"] for d in listed.body["devices"]] == ["acme-6001"]
    pool = await api.call("PUT", f"/v1/limits/tenants/{A}/pools/seats", token,
                          json_body={"size": 7})
    assert pool.status == 200 and pool.body["limit"] == 7
    number = await api.call("PUT", f"/v1/limits/tenants/{A}/numbers/+4930123", token,
                            json_body={"channels": None})
    assert number.status == 200 and number.body["limit"] is None


async def test_a_reseller_sets_a_sub_tenant_limit(world: Api) -> None:
    token = await world.token("reseller", "resell")
    got = await world.call("PUT", f"/v1/limits/tenants/{SUB}/pools/seats", token,
                           json_body={"size": 2})
    assert got.status == 200 and got.body["limit"] == 2


async def test_limits_service_missing_answers_503(make_api: Any) -> None:
    api: Api = await make_api(limits=None)
    token = await api.token("operator", "*")
    got = await api.call("GET", f"/v1/limits/tenants/{A}", token)
    assert got.status == 503 and got.body["error"]["code"] == "limits_unavailable"
    got = await api.call("GET", "/v1/hw/profiles", token)
    assert got.status == 200

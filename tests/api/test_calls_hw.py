"""Live calls and hardware over HTTP."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import A, Api, B, out_call


async def test_calls_join_leases_with_live_calls_per_tenant(world: Api) -> None:
    site = await world.token("operator", "*")
    every = await world.call("GET", "/v1/calls", site)
    assert every.status == 200 and every.body["live_known"] is True
    assert len(every.body["calls"]) == 6
    assert all(c["live"] is not None for c in every.body["calls"])
    assert [u["call_id"] for u in every.body["unleased"]] == ["1700000099.1"]
    mine = await world.call("GET", "/v1/calls", await world.token("supervisor", A))
    assert [c["tenant"] for c in mine.body["calls"]] == [A]
    assert mine.body["calls"][0]["live"]["channels"] == ["PJSIP/acme-100-00000000"]
    assert mine.body["unleased"] == []
    only_b = await world.call("GET", "/v1/calls", site, params={"tenant": B})
    assert [c["tenant"] for c in only_b.body["calls"]] == [B]
    assert only_b.body["unleased"] == []


async def test_calls_without_a_live_source_still_list_leases(make_api: Any) -> None:
    api: Api = await make_api(live_calls=None)
    decision = await api.limits.authorize(out_call(A, "9.1"))
    got = await api.call("GET", "/v1/calls", await api.token("operator", "*"))
    assert got.body["live_known"] is False
    assert [(c["lease_id"], c["live"]) for c in got.body["calls"]] == [
        (decision.lease_id, None)]


async def test_hardware_profiles_for_any_token(api: Api) -> None:
    token = await api.token("supervisor", A)
    spans = await api.call("GET", "/v1/hw/profiles", token, params={"kind": "pri_span"})
    assert spans.status == 200
    assert {p["name"]: p["capacity"] for p in spans.body["profiles"]} == {
        "sangoma-a101-e1": 30, "sangoma-a101-t1": 23, "sangoma-a102-e1": 60}
    one = await api.call("GET", "/v1/hw/profiles/yealink-t46u", token)
    assert one.body["details"]["simultaneous_calls"] == 5
    missing = await api.call("GET", "/v1/hw/profiles/nokia-3310", token)
    assert missing.status == 404 and missing.body["error"]["code"] == "unknown_profile"
    bad_kind = await api.call("GET", "/v1/hw/profiles", token, params={"kind": "fax"})
    assert bad_kind.status == 422 and bad_kind.body["error"]["field"] == "kind"


async def test_devices_for_site_tokens(api: Api) -> None:
    site = await api.token("admin", "*")
    listed = await api.call("GET", "/v1/devices", site)
    assert [(d["endpoint"], d["profile"], d["call_limit"]) for d in listed.body["devices"]] == [
        ("6001", "yealink-t46u", 5)]
    one = await api.call("GET", "/v1/devices/6001", site)
    assert one.body["registered"] is True
    assert (await api.call("GET", "/v1/devices/6099", site)).status == 404
    tenant = await api.call("GET", "/v1/devices", await api.token("operator", A))
    assert tenant.status == 403 and tenant.body["error"]["code"] == "site_token_required"


async def test_missing_device_registry_answers_503(make_api: Any) -> None:
    api: Api = await make_api(devices=None)
    got = await api.call("GET", "/v1/devices", await api.token("admin", "*"))
    assert got.status == 503 and got.body["error"]["code"] == "devices_unavailable"

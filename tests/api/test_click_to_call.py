"""POST /v1/calls/click-to-call: who may ring a desk phone, bad input, and what happens
before anything is dialled (the Originate itself is checked through the simulator in
tests/e2e_devices)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.devices import DeviceRegistry
from gateway.devices.dialing import ClickToCall
from tests.api.conftest import A, Api

PATH = "/v1/calls/click-to-call"
BODY = {"tenant": A, "device": "6001", "dest": "4930123456"}


class _NotLoggedIn:
    logged_in = False


class _Link:
    client: Any = _NotLoggedIn()


async def test_only_site_wide_admins_and_operators_may_click_to_call(api: Api) -> None:
    for role, tenant, code in (("supervisor", A, "role_forbidden"),
                               ("reseller", A, "role_forbidden"),
                               ("admin", A, "site_token_required"),
                               ("operator", A, "site_token_required")):
        got = await api.call("POST", PATH, await api.token(role, tenant), json_body=BODY)
        assert (got.status, got.body["error"]["code"]) == (403, code), (role, tenant)
    got = await api.call("POST", PATH, None, json_body=BODY)
    assert got.status == 401


async def test_without_the_service_the_route_answers_503(api: Api) -> None:
    got = await api.call("POST", PATH, await api.token("operator", "*"), json_body=BODY)
    assert (got.status, got.body["error"]["code"]) == (503, "click_to_call_unavailable")


async def test_bad_input_is_refused_with_the_field(make_api: Callable[..., Any],
                                                   profiles: Any) -> None:
    registry = DeviceRegistry(profiles)
    api: Api = await make_api(click_to_call=ClickToCall(registry, {"ast1": _Link()}))
    token = await api.token("admin", "*")
    for body, field in (({**BODY, "dest": "49 30"}, "dest"),
                        ({"tenant": A, "device": "6001"}, None),
                        ({**BODY, "tenant": "a/b"}, "tenant"),
                        ({**BODY, "context": "x;y"}, "context"),
                        ({**BODY, "extra": 1}, None)):
        got = await api.call("POST", PATH, token, json_body=body)
        assert got.status == 422, (body, got.text)
        if field is not None:
            assert got.body["error"]["field"] == field, got.text


async def test_phone_state_decides_before_anything_is_dialled(
        make_api: Callable[..., Any], profiles: Any) -> None:
    registry = DeviceRegistry(profiles)
    for endpoint, statuses in (("6001", ["Reachable"]), ("6002", ["Reachable", "Removed"])):
        for status in statuses:  # 6002 registered, then unregistered
            event: Any = {"Event": "ContactStatus", "EndpointName": endpoint, "AOR": endpoint,
                          "URI": f"sip:{endpoint}@192.0.2.10:5060", "ContactStatus": status}
            registry.handle_event(event)
    api: Api = await make_api(click_to_call=ClickToCall(registry, {"ast1": _Link()}))
    token = await api.token("operator", "*")

    unknown = await api.call("POST", PATH, token, json_body={**BODY, "device": "7777"})
    assert (unknown.status, unknown.body["error"]["code"]) == (404, "unknown_device")
    offline = await api.call("POST", PATH, token, json_body={**BODY, "device": "6002"})
    assert (offline.status, offline.body["error"]["code"]) == (422, "device_offline")
    assert offline.body["error"]["field"] == "device"
    no_ami = await api.call("POST", PATH, token, json_body=BODY)
    assert (no_ami.status, no_ami.body["error"]["code"]) == (503, "ami_unavailable")

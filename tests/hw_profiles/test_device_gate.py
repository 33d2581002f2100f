"""Which desk phone a call concerns, and its limit following the phone's profile, against
a real Redis (the whole chain through the simulator is in tests/e2e_devices)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from gateway.devices import DeviceRegistry
from gateway.devices.enforcement import DeviceGate, endpoint_of_channel
from hw_profiles import ProfileSet
from limits import CallRequest, Direction, EmergencyNumbers, LimitsService


def _register(registry: DeviceRegistry, endpoint: str, user_agent: str,
              status: str = "NonQualified") -> None:
    item: Any = {"Event": "ContactList", "Endpoint": endpoint,
                 "Uri": f"sip:{endpoint}@192.0.2.7:5060", "Status": status,
                 "UserAgent": user_agent}
    registry.handle_event(item)


def _unregister(registry: DeviceRegistry, endpoint: str) -> None:
    event: Any = {"Event": "ContactStatus", "EndpointName": endpoint, "AOR": endpoint,
                  "URI": f"sip:{endpoint}@192.0.2.7:5060", "ContactStatus": "Removed"}
    registry.handle_event(event)


def test_endpoint_is_read_from_pjsip_channels_only() -> None:
    assert endpoint_of_channel("PJSIP/6001-0000002a") == "6001"
    assert endpoint_of_channel("PJSIP/acme-sales-6001-0000002a") == "acme-sales-6001"
    assert endpoint_of_channel("Local/6001@ctx-00000001;2") is None
    assert endpoint_of_channel("SIP/6001-0000002a") is None
    assert endpoint_of_channel("PJSIP/6001") is None


async def test_calls_get_the_phone_scope_and_its_profile_limit(
        redis_client: aioredis.Redis, profiles: ProfileSet) -> None:
    limits = LimitsService(redis_client, "t", emergency=EmergencyNumbers(["112"]))
    registry = DeviceRegistry(profiles)
    gate = DeviceGate(registry, limits.settings)
    _register(registry, "6001", "Yealink SIP-T31P 124.86.0.40")
    await limits.settings.set_device_limit("acme", "6001", 9)  # by hand: replaced

    out = CallRequest("acme", Direction.OUT, dest="4930123456")
    call, refusal = await gate.prepare(out, "PJSIP/6001-00000001")
    assert refusal is None and call.device == "6001"
    assert (await limits.settings.show("device", "6001", tenant="acme")).limit == 2

    # A trunk channel, a Local channel and an inbound call to a DID are no phone's, even
    # when the trunk endpoint shows in the registry through its device state.
    registry.handle_event({"Event": "DeviceStateChange", "Device": "PJSIP/trunk",
                           "State": "INUSE"})
    assert registry.device("trunk") is not None
    for req, channel in ((out, "PJSIP/trunk-00000002"), (out, "Local/x@y-00000001;2"),
                         (CallRequest("acme", Direction.IN, dest="4930123456"),
                          "PJSIP/trunk-00000003")):
        call, refusal = await gate.prepare(req, channel)
        assert refusal is None and call.device is None

    # The same phone re-registers as another model: the limit follows.
    _unregister(registry, "6001")
    _register(registry, "6001", "Grandstream GXP2170 1.0.11.6")
    call, _ = await gate.prepare(CallRequest("acme", Direction.IN, dest="6001"), "PJSIP/t-1")
    assert call.device == "6001"
    assert (await limits.settings.show("device", "6001", tenant="acme")).limit == 12


async def test_calls_to_unregistered_phones_are_refused_before_any_slot(
        redis_client: aioredis.Redis, profiles: ProfileSet) -> None:
    limits = LimitsService(redis_client, "t", emergency=EmergencyNumbers(["112"]))
    registry = DeviceRegistry(profiles)
    gate = DeviceGate(registry, limits.settings)
    _register(registry, "6002", "PolycomVVX-VVX_450-UA/6.4.3.5018")
    _unregister(registry, "6002")
    for req in (CallRequest("acme", Direction.IN, dest="6002"),
                CallRequest("acme", Direction.IN, dest="7000", device="6099")):
        _, refusal = await gate.prepare(req, "PJSIP/trunk-00000001")
        assert refusal is not None
        assert (refusal.result, refusal.reason, refusal.cause) == ("DENY", "device_offline", 20)
    assert await limits.in_use() == {}
    # The phone calling out is not refused by this check (it is evidently there).
    call, refusal = await gate.prepare(
        CallRequest("acme", Direction.OUT, dest="4930", device="6002"), "PJSIP/6002-0000000a")
    assert refusal is None and call.device == "6002"

"""Desk phones through the simulator: registration and profiles, call appearances,
device_offline, an E1 trunk from its profile, click-to-call with the auto-answer header.

The daemon is the real process; the simulated Asterisk sends the AMI events of h1/h2 and
runs FastAGI authorize over real sockets, as in tests/e2e.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from sim.gateway_call import GatewayCall
from tests.e2e_devices.conftest import (
    GRANDSTREAM_GXP2170,
    POLY_VVX_450,
    STAY_UP,
    YEALINK_T31P,
    Lab,
)

YEALINK_ALERT = ("PJSIP_HEADER(add,Alert-Info)",
                 "<http://127.0.0.1>;info=alert-autoanswer;delay=0")


def _summary(decisions: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return sorted((d["CALLGATE_RESULT"], d["CALLGATE_REASON"], d["CALLGATE_CAUSE"])
                  for d in decisions)


def _cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    config = lab.stack.tmp / "cli.toml"
    config.write_text(lab.stack.config_text)
    group, *rest = args
    return subprocess.run([sys.executable, "-m", "gateway.cli", group, "--config", str(config),
                           *rest], capture_output=True, text=True, timeout=60)


async def test_three_models_register_and_get_their_profiles(lab: Lab) -> None:
    lab.sim.register_phone("6001", user_agent=YEALINK_T31P)  # before the gateway starts
    await lab.stack.start_daemon()
    lab.sim.register_phone("6002", user_agent=POLY_VVX_450)  # while it is connected
    lab.sim.register_phone("6003", user_agent=GRANDSTREAM_GXP2170)
    seen = await lab.wait_devices({"6001": "yealink-t31p", "6002": "poly-vvx-450",
                                   "6003": "grandstream-gxp2170"})
    assert [seen[e]["call_limit"] for e in ("6001", "6002", "6003")] == [2, 12, 12]
    assert all(seen[e]["profile_matched"] for e in ("6001", "6002", "6003"))
    assert seen["6002"]["user_agent"] == POLY_VVX_450

    lab.sim.unregister_phone("6003")
    async with asyncio.timeout(10):
        while (await lab.devices())["6003"]["registered"]:
            await asyncio.sleep(0.05)


async def test_two_appearance_phone_refuses_its_third_call(lab: Lab) -> None:
    # A hand-set number does not win over the profile of the phone that registered.
    await lab.stack.limits.settings.set_device_limit("acme", "6001", 10)
    lab.sim.register_phone("6001", user_agent=YEALINK_T31P)
    await lab.stack.start_daemon()
    await lab.wait_devices({"6001": "yealink-t31p"})

    calls = [lab.from_phone("6001", STAY_UP) for _ in range(3)]
    decisions = await asyncio.gather(*(lab.stack.decided(c) for c in calls))
    assert _summary(decisions) == [("ALLOW", "ok", "0"), ("ALLOW", "ok", "0"),
                                   ("DENY", "device_busy", "17")]
    device = await lab.stack.limits.settings.show("device", "6001", tenant="acme")
    assert (device.limit, device.in_use) == (2, 2)

    # Another phone of the same tenant is not held back by it.
    lab.sim.register_phone("6002", user_agent=POLY_VVX_450)
    await lab.wait_devices({"6002": "poly-vvx-450"})
    other = await lab.stack.decided(lab.from_phone("6002", STAY_UP))
    assert other["CALLGATE_RESULT"] == "ALLOW"

    for call, d in zip(calls, decisions, strict=True):
        if d["CALLGATE_RESULT"] == "ALLOW":
            lab.stack.hang_up(call)
    await lab.stack.wait_in_use({("device", "6001", "acme"): 0}, 10)  # type: ignore[dict-item]
    again = await lab.stack.decided(lab.from_phone("6001", STAY_UP))
    assert again["CALLGATE_RESULT"] == "ALLOW"


async def test_calls_to_unregistered_phones_are_refused_device_offline(lab: Lab) -> None:
    lab.sim.register_phone("6001", user_agent=YEALINK_T31P)
    lab.sim.register_phone("6002", user_agent=POLY_VVX_450)
    await lab.stack.start_daemon()
    await lab.wait_devices({"6001": "yealink-t31p", "6002": "poly-vvx-450"})
    lab.sim.unregister_phone("6002")
    async with asyncio.timeout(10):
        while (await lab.devices())["6002"]["registered"]:
            await asyncio.sleep(0.05)

    offline = [
        lab.to_phone("6002"),  # registered, then unregistered
        lab.to_phone("6003"),  # configured in pjsip.conf, never registered
        lab.to_phone("7000", phone="6003"),  # named by device=
    ]
    decisions = await asyncio.gather(*(lab.stack.decided(c) for c in offline))
    assert _summary(decisions) == [("DENY", "device_offline", "20")] * 3
    for call in offline:
        async with asyncio.timeout(10):
            await call.ended.wait()  # hung up by the dialplan, nothing dialled
        assert call.c1 is None

    by_dest = lab.to_phone("6001")  # dest is the registered phone
    d = await lab.stack.decided(by_dest)
    assert (d["CALLGATE_RESULT"], d["CALLGATE_REASON"]) == ("ALLOW", "ok")
    lab.stack.hang_up(by_dest)
    online = lab.to_phone(STAY_UP, phone="6001")  # named by device=, stays up
    d = await lab.stack.decided(online)
    assert (d["CALLGATE_RESULT"], d["CALLGATE_REASON"]) == ("ALLOW", "ok")
    await lab.stack.wait_in_use({("device", "6001", "acme"): 1,  # type: ignore[dict-item]
                                 ("tenant_inbound", "acme"): 1}, 10)
    lab.stack.hang_up(online)
    await lab.stack.wait_in_use({("device", "6001", "acme"): 0}, 10)  # type: ignore[dict-item]


async def test_trunk_set_from_e1_profile_refuses_the_31st_call(lab: Lab) -> None:
    done = await asyncio.to_thread(_cli, lab, "limit", "set", "trunk", "e1-1",
                                   "--profile", "sangoma-a101-e1")
    assert done.returncode == 0, done.stderr
    await lab.stack.start_daemon()
    calls = [lab.stack.place(STAY_UP) for _ in range(31)]
    decisions = await asyncio.gather(*(lab.stack.decided(c, 20) for c in calls))
    assert _summary(decisions) == [("ALLOW", "ok", "0")] * 30 + [("DENY", "trunk_full", "34")]
    trunk = await lab.stack.limits.settings.show("trunk", "e1-1")
    assert (trunk.limit, trunk.in_use) == (30, 30)
    for call, d in zip(calls, decisions, strict=True):
        if d["CALLGATE_RESULT"] == "ALLOW":
            lab.stack.hang_up(call)
    await lab.stack.wait_in_use({("trunk", "e1-1"): 0}, 10)


def _spy_originates(lab: Lab) -> list[Any]:
    """What the simulated Asterisk parsed from each Originate to a PJSIP phone."""
    seen: list[Any] = []
    place = lab.sim.dialplan.phone_originator
    assert place is not None

    def spy(req: Any, handle: Any) -> bool:
        seen.append(req)
        ok: bool = place(req, handle)
        return ok

    lab.sim.dialplan.phone_originator = spy
    return seen


def _phone_leg(lab: Lab, endpoint: str) -> GatewayCall | None:
    for flow in list(lab.sim.dialplan.flows):
        if isinstance(flow, GatewayCall) and flow.g2.name.startswith(f"PJSIP/{endpoint}-"):
            return flow
    return None


async def test_click_to_call_rings_a_yealink_with_its_auto_answer_header(lab: Lab) -> None:
    lab.sim.register_phone("6001", user_agent=YEALINK_T31P)
    lab.sim.register_phone("6002", user_agent=POLY_VVX_450)
    await lab.stack.start_daemon()
    await lab.wait_devices({"6001": "yealink-t31p", "6002": "poly-vvx-450"})
    originates = _spy_originates(lab)

    status, body = await lab.api("POST", "/v1/calls/click-to-call",
                                 {"tenant": "acme", "device": "6001", "dest": STAY_UP})
    assert status == 202, body
    assert body["profile"] == "yealink-t31p"
    async with asyncio.timeout(10):
        while not originates:
            await asyncio.sleep(0.02)
    req = originates[0]
    assert req.channel == "PJSIP/6001"
    assert (req.context, req.exten) == ("callgate-click-to-call", STAY_UP)
    assert YEALINK_ALERT in req.variables
    assert ("CALLGATE_TENANT", "acme") in req.variables
    assert req.channel_id == body["channel_id"]

    # The phone answered by itself; its leg was authorized on the phone's appearances
    # and the trunk, then dialled the destination.
    async with asyncio.timeout(10):
        while (leg := _phone_leg(lab, "6001")) is None:
            await asyncio.sleep(0.02)
    d = await lab.stack.decided(leg)
    assert (d["CALLGATE_RESULT"], d["CALLGATE_REASON"]) == ("ALLOW", "ok")
    await lab.stack.wait_in_use({("device", "6001", "acme"): 1,  # type: ignore[dict-item]
                                 ("trunk", "e1-1"): 1}, 10)
    async with asyncio.timeout(10):
        while not leg.answered:
            await asyncio.sleep(0.02)

    # A Polycom gets the Polycom header, through the CLI this time.
    done = await asyncio.to_thread(_cli, lab, "calls", "click-to-call", "--device", "6002",
                                   "--dest", STAY_UP, "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    assert "poly-vvx-450" in done.stdout
    assert ("PJSIP_HEADER(add,Alert-Info)", "info=Auto Answer") in originates[1].variables

    # An unregistered phone is not rung.
    lab.sim.unregister_phone("6002")
    async with asyncio.timeout(10):
        while (await lab.devices())["6002"]["registered"]:
            await asyncio.sleep(0.05)
    status, body = await lab.api("POST", "/v1/calls/click-to-call",
                                 {"tenant": "acme", "device": "6002", "dest": STAY_UP})
    assert (status, body["error"]["code"]) == (422, "device_offline")
    status, body = await lab.api("POST", "/v1/calls/click-to-call",
                                 {"tenant": "acme", "device": "6099", "dest": STAY_UP})
    assert (status, body["error"]["code"]) == (404, "unknown_device")
    assert len(originates) == 2

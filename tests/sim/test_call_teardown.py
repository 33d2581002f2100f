"""Whatever leg is hung up over AMI, in whatever phase, every channel of the call ends with
exactly one Hangup event and nothing is left behind (what a gateway's slot release relies
on)."""

from __future__ import annotations

import asyncio

import pytest

from sim.ami_codec import Headers
from sim.dialplan import RECORDING_AGI, ContextConfig, GatewayCall
from sim.originate import OriginateRequest
from tests.sim.agi_server import TinyAgiServer, gw_auth_ok
from tests.sim.conftest import SimFactory

PHASES = {
    # phase -> (number dialled, AGI server stall in real seconds)
    "agi": ("150", 0.5),
    "ringing": ("250", 0.0),
    "bridged": ("150", 0.0),
}


def _ready(call: GatewayCall, phase: str) -> bool:
    if phase == "agi":
        return call.agi is not None
    if phase == "ringing":
        return call.c1 is not None and call.c1.state == 5
    return call.answered


CASES = [
    (phase, leg)
    for phase in PHASES
    for leg in ("g1", "g2", "c1", "c2")
    if not (phase == "agi" and leg in ("c1", "c2"))  # no callee legs while the AGI runs
]


@pytest.mark.parametrize(("phase", "leg"), CASES)
async def test_any_leg_hung_up_in_any_phase(make_sim: SimFactory, phase: str, leg: str) -> None:
    number, stall = PHASES[phase]
    sim = await make_sim(speed=20.0)
    seen: list[Headers] = []
    sim.world.subscribe(seen.append)
    async with TinyAgiServer(gw_auth_ok, stall=stall) as agi:
        url = RECORDING_AGI.replace("127.0.0.1:4573", f"127.0.0.1:{agi.port}")
        sim.add_context(ContextConfig("gw-out", "recording", url))
        handle = sim.dialplan.originate(
            OriginateRequest(
                "Local/" + number + "@gw-out",
                "sim-caller",
                "s",
                caller_num="5551234",
                caller_name="T",
                action_id="x",
            )
        )
        call = next(f for f in sim.dialplan.flows if isinstance(f, GatewayCall))
        for _ in range(300):
            if _ready(call, phase):
                break
            await asyncio.sleep(0.005)
        assert _ready(call, phase), phase
        target = getattr(call, leg)
        sim.dialplan.request_hangup(target, None)
        await asyncio.wait_for(call.ended.wait(), 5)
        outcome = await asyncio.wait_for(handle.wait(), 1)
    created = [dict(f)["Channel"] for f in seen if f[0][1] == "Newchannel"]
    hung = [dict(f)["Channel"] for f in seen if f[0][1] == "Hangup"]
    assert sorted(created) == sorted(hung)  # each exactly once
    for name in created:
        evs = [f[0][1] for f in seen if dict(f).get("Channel") == name and f[0][1] != "Cdr"]
        assert evs[-1] == "Hangup", (name, evs[-3:])
    assert not sim.world.live_channels()
    assert not sim.world.bridges
    responses = [f for f in seen if f[0][1] == "OriginateResponse"]
    assert len(responses) == 1
    assert outcome.reason == int(dict(responses[0])["Reason"])
    assert (outcome.reason == 4) == (phase == "bridged")

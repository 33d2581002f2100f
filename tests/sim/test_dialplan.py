"""The dialplan model end to end: a call enters a callgate context, FastAGI runs against a
real (tiny) AGI server over TCP, and the CALLGATE_* answer decides what happens."""

from __future__ import annotations

import asyncio

from sim.ami_codec import Headers
from sim.dialplan import ContextConfig, GatewayCall
from sim.farend import Dist, RandomFarEnd
from sim.simulator import AsteriskSim
from tests.sim.agi_server import TinyAgiServer, allow, deny
from tests.sim.conftest import SimFactory

ANSWERING = RandomFarEnd(
    ring=Dist.fixed(1.0), talk=Dist.fixed(5.0), answer_probability=1.0, busy_rate=0.0
)


def _record(sim: AsteriskSim) -> list[Headers]:
    seen: list[Headers] = []
    sim.world.subscribe(seen.append)
    return seen


def _events_of(seen: list[Headers], channel: str) -> list[str]:
    return [f[0][1] for f in seen if dict(f).get("Channel") == channel and f[0][1] != "Cdr"]


def _one(seen: list[Headers], event: str, channel: str) -> dict[str, str]:
    found = [dict(f) for f in seen if f[0][1] == event and dict(f).get("Channel") == channel]
    assert len(found) == 1, f"{event} on {channel}: {found}"
    return found[0]


async def _run_call(sim: AsteriskSim, agi: TinyAgiServer, number: str) -> GatewayCall:
    sim.add_context(
        ContextConfig("callgate-out", agi=agi.url() + ",tenant=acme,direction=out", dial_timeout=20)
    )
    call = sim.place_call(number, context="callgate-out", caller_num="4930123")
    await asyncio.wait_for(call.ended.wait(), 5)
    return call


async def test_allowed_call_is_answered_talks_and_ends_normally(make_sim: SimFactory) -> None:
    sim = await make_sim()
    sim.set_far_end(ANSWERING)
    seen = _record(sim)
    async with TinyAgiServer(allow()) as agi:
        call = await _run_call(sim, agi, "4915100001")
    chan = call.g2.name
    assert _events_of(seen, chan) == [
        "Newchannel", "Newexten", "AGIExecStart", "VarSet", "AGIExecEnd",
        "AGIExecStart", "VarSet", "AGIExecEnd", "AGIExecStart", "VarSet", "AGIExecEnd",
        "AGIExecStart", "VarSet", "AGIExecEnd", "VarSet", "Newexten", "Newexten",
        *["VarSet"] * 11, "DialBegin", "VarSet", "VarSet", "DialState",
        "VarSet", "VarSet", "VarSet", "DialEnd", "Newstate", "BridgeEnter", "VarSet",
        "VarSet", "BridgeLeave", *["VarSet"] * 5, "SoftHangupRequest", "Hangup",
    ]  # fmt: skip
    # the FastAGI request is what Asterisk sends for AGI(url,tenant=acme,direction=out)
    env = agi.requests[0]
    assert env["agi_network_script"] == "authorize"
    assert env["agi_arg_1"] == "tenant=acme"
    assert env["agi_arg_2"] == "direction=out"
    assert env["agi_extension"] == "4915100001"
    assert env["agi_callerid"] == "4930123"
    assert env["agi_channel"] == chan
    dial = next(dict(f) for f in seen if dict(f).get("Application") == "Dial")
    assert dial["AppData"] == "Local/4915100001@sim-callee,20,"
    assert _one(seen, "DialEnd", chan)["DialStatus"] == "ANSWER"
    hangup = _one(seen, "Hangup", chan)
    assert (hangup["Cause"], hangup["Cause-txt"]) == ("16", "Normal Clearing")
    answered = [dict(f) for f in seen if dict(f).get("Variable") == "ANSWEREDTIME"]
    assert answered[-1]["Value"] == "5"
    cdr = next(dict(f) for f in seen if f[0][1] == "Cdr" and dict(f)["Channel"] == chan)
    assert (cdr["Disposition"], cdr["BillableSeconds"]) == ("ANSWERED", "5")
    assert call.outcome == "answered"
    assert not sim.world.live_channels()


async def test_denied_call_hangs_up_with_the_cause_and_never_dials(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim()
    sim.set_far_end(ANSWERING)
    seen = _record(sim)
    async with TinyAgiServer(deny(34, "trunk_full")) as agi:
        call = await _run_call(sim, agi, "4915100002")
    chan = call.g2.name
    hangup = _one(seen, "Hangup", chan)
    assert (hangup["Cause"], hangup["Cause-txt"]) == ("34", "Circuit/channel congestion")
    assert not [
        f for f in seen if f[0][1] in ("DialBegin", "Newchannel") and dict(f).get("Channel") != chan
    ]
    apps = [dict(f)["Application"] for f in seen if f[0][1] == "Newexten"]
    assert apps == ["AGI", "GotoIf", "Hangup"]
    assert call.g2.variables["CALLGATE_REASON"] == "trunk_full"
    assert call.outcome == "denied"


async def test_maxsec_cuts_the_call(make_sim: SimFactory) -> None:
    sim = await make_sim()
    sim.set_far_end(
        RandomFarEnd(
            ring=Dist.fixed(0), talk=Dist.fixed(600), answer_probability=1.0, busy_rate=0.0
        )
    )
    seen = _record(sim)
    async with TinyAgiServer(allow(maxsec=2)) as agi:
        call = await _run_call(sim, agi, "4915100003")
    chan = call.g2.name
    dial = next(dict(f) for f in seen if dict(f).get("Application") == "Dial")
    assert dial["AppData"].endswith(",L(2000)")
    answered = [dict(f) for f in seen if dict(f).get("Variable") == "ANSWEREDTIME"]
    assert answered[-1]["Value"] == "2"
    events = _events_of(seen, chan)
    assert events.index("BridgeLeave") < events.index("Hangup")
    assert _one(seen, "Hangup", chan)["Cause"] == "16"
    assert not sim.world.live_channels()


async def test_ami_hangup_mid_call_ends_every_leg(make_sim: SimFactory) -> None:
    sim = await make_sim()
    sim.set_far_end(
        RandomFarEnd(
            ring=Dist.fixed(0), talk=Dist.fixed(600), answer_probability=1.0, busy_rate=0.0
        )
    )
    seen = _record(sim)
    async with TinyAgiServer(allow()) as agi:
        sim.add_context(ContextConfig("callgate-out", agi=agi.url()))
        call = sim.place_call("4915100004", context="callgate-out")
        for _ in range(100):
            if call.answered:
                break
            await asyncio.sleep(0.01)
        assert call.answered
        sim.dialplan.request_hangup(call.g2, 17)
        await asyncio.wait_for(call.ended.wait(), 5)
    hangups = [dict(f) for f in seen if f[0][1] == "Hangup"]
    assert len(hangups) == 3  # caller, callee ;1 and ;2
    assert {h["Cause"] for h in hangups} == {"17"}
    assert not sim.world.live_channels()


async def test_release_hook_and_inbound_context(make_sim: SimFactory) -> None:
    """An inbound context with the `h`-extension release AGI: after the hangup the gateway
    gets `release,lease=...` on a new FastAGI connection."""
    sim = await make_sim()
    sim.set_far_end(ANSWERING)
    async with TinyAgiServer(allow()) as agi:
        sim.add_context(
            ContextConfig(
                "callgate-in",
                agi=agi.url() + ",tenant=acme,direction=in,number=${EXTEN}",
                release_agi=agi.url("release") + ",lease=${CALLGATE_LEASE}",
            )
        )
        call = sim.place_call("4930555", context="callgate-in", endpoint="trunk1", hangup_after=2.0)
        await asyncio.wait_for(call.ended.wait(), 5)
        for _ in range(100):
            if len(agi.requests) == 2:
                break
            await asyncio.sleep(0.01)
    authorize, release = agi.requests
    assert authorize["agi_arg_3"] == "number=4930555"
    assert authorize["agi_channel"].startswith("PJSIP/trunk1-")
    assert release["agi_network_script"] == "release"
    assert release["agi_arg_1"] == "lease=lease-1"
    assert release["agi_extension"] == "h"
    assert call.outcome == "answered"

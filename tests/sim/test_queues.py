"""Queues and agents: an answered lead handed to a queue (Originate Context = the queue
context), members ringing, talking, wrapping up, pausing; QueueStatus from that state."""

from __future__ import annotations

import asyncio

from sim.ami_codec import Headers
from sim.dialplan import RECORDING_AGI, ContextConfig
from sim.farend import Dist
from sim.originate import OriginateRequest
from sim.simulator import AsteriskSim
from tests.sim.agi_server import TinyAgiServer, gw_auth_ok
from tests.sim.conftest import SimFactory
from tests.sim.replay import AmiClient


def _lead(exten: str, queue: str) -> OriginateRequest:
    return OriginateRequest(
        channel=f"Local/{exten}@gw-out",
        context="callgate-queue",
        exten=queue,
        caller_num="5551234",
        caller_name="Dialer",
        variables=(("GW_CALL_ID", f"lead-{exten}"),),
        action_id=f"lead-{exten}",
    )


def _names(seen: list[Headers]) -> list[str]:
    return [f[0][1] for f in seen]


async def _setup(make_sim: SimFactory, agi: TinyAgiServer) -> tuple[AsteriskSim, list[Headers]]:
    sim = await make_sim()
    url = RECORDING_AGI.replace("127.0.0.1:4573", f"127.0.0.1:{agi.port}")
    sim.add_context(ContextConfig("gw-out", "recording", url))
    seen: list[Headers] = []
    sim.world.subscribe(seen.append)
    return sim, seen


async def test_agent_takes_the_call_then_wraps_up(make_sim: SimFactory) -> None:
    async with TinyAgiServer(gw_auth_ok) as agi:
        sim, seen = await _setup(make_sim, agi)
        sim.queues.add_queue("sales", wrapup=5)
        sim.queues.add_member(
            "sales", "PJSIP/agent1", name="Alice", ring=Dist.fixed(1), talk=Dist.fixed(3)
        )
        handle = sim.dialplan.originate(_lead("150", "sales"))  # 150 answers and stays up
        assert (await asyncio.wait_for(handle.wait(), 3)).reason == 4
        for _ in range(300):
            if not sim.world.live_channels() and "AgentComplete" in _names(seen):
                break
            await asyncio.sleep(0.01)
    names = _names(seen)
    order = ["QueueCallerJoin", "AgentCalled", "QueueCallerLeave", "AgentConnect", "AgentComplete"]
    assert [n for n in names if n in order] == order
    connect = next(dict(f) for f in seen if f[0][1] == "AgentConnect")
    assert (connect["Queue"], connect["MemberName"], connect["Interface"]) == (
        "sales",
        "Alice",
        "PJSIP/agent1",
    )
    assert connect["RingTime"] == "1"
    complete = next(dict(f) for f in seen if f[0][1] == "AgentComplete")
    assert (complete["Reason"], complete["TalkTime"]) == ("agent", "3")
    statuses = [dict(f)["Status"] for f in seen if f[0][1] == "QueueMemberStatus"]
    assert statuses == ["6", "2", "1"]  # ringing, in use, free again
    assert not sim.world.live_channels()  # the agent hanging up released the whole call
    member = sim.queues.queues["sales"].members[0]
    assert member.calls_taken == 1
    assert member.wrapup_until > sim.clock.now()  # still in wrap-up

    client = await AmiClient.connect(sim.ami_port)
    try:
        client.send(b"Action: Login\r\nUsername: gateway\r\nSecret: gateway\r\n\r\n")
        client.send(b"Action: QueueStatus\r\nActionID: qs\r\n\r\n")
        done = await client.wait_for(lambda f: f[0] == ("Event", "QueueStatusComplete"))
        assert dict(done)["ListItems"] == "2"
        member_item = next(dict(f) for f in client.frames if f[0] == ("Event", "QueueMember"))
        assert member_item["ActionID"] == "qs"
        assert (member_item["Name"], member_item["CallsTaken"]) == ("Alice", "1")
        params = next(dict(f) for f in client.frames if f[0] == ("Event", "QueueParams"))
        assert (params["Completed"], params["Abandoned"]) == ("1", "0")
    finally:
        await client.close()


async def test_caller_abandons_when_every_agent_is_paused(make_sim: SimFactory) -> None:
    async with TinyAgiServer(gw_auth_ok) as agi:
        sim, seen = await _setup(make_sim, agi)
        sim.queues.add_queue("support")
        sim.queues.add_member("support", "PJSIP/agent2", name="Bob")
        assert sim.queues.set_paused("PJSIP/agent2", True, reason="lunch")
        handle = sim.dialplan.originate(_lead("100", "support"))  # 100 hangs up after 5 s
        assert (await asyncio.wait_for(handle.wait(), 3)).reason == 4
        for _ in range(300):
            if not sim.world.live_channels():
                break
            await asyncio.sleep(0.01)
    names = _names(seen)
    assert "QueueMemberPause" in names
    pause = next(dict(f) for f in seen if f[0][1] == "QueueMemberPause")
    assert (pause["Paused"], pause["PausedReason"]) == ("1", "lunch")
    assert "AgentCalled" not in names
    abandon = next(dict(f) for f in seen if f[0][1] == "QueueCallerAbandon")
    assert (abandon["Queue"], abandon["Position"], abandon["OriginalPosition"]) == (
        "support",
        "1",
        "1",
    )
    assert names.index("QueueCallerAbandon") < max(i for i, n in enumerate(names) if n == "Hangup")
    assert sim.queues.queues["support"].abandoned == 1

"""PERIODIC_HOOK over AMI with live_dangerously on, beyond what g2 recorded: the hook fires
again after its interval, `off` stops it, `on` brings it back, a bad write is refused, a
cut prompt leaves the call up, and the hook dies with its channel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sim.dialplan import RECORDING_AGI, ContextConfig
from sim.simulator import AsteriskSim
from tests.sim.agi_server import TinyAgiServer, gw_auth_ok
from tests.sim.conftest import SimFactory
from tests.sim.recorded import Frame
from tests.sim.replay import AmiClient

LOGIN = b"Action: Login\r\nUsername: gateway\r\nSecret: gateway\r\n\r\n"
HOOK_CHANNEL = "Local/hook@__func_periodic_hook_context__"


def _action(name: str, action_id: str, **headers: str) -> bytes:
    lines = [f"Action: {name}", f"ActionID: {action_id}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _is(event: str, **fields: str) -> Callable[[Frame], bool]:
    def pred(f: Frame) -> bool:
        d = dict(f)
        return d.get("Event") == event and all(d.get(k) == v for k, v in fields.items())

    return pred


def _count(client: AmiClient, event: str) -> int:
    return sum(1 for f in client.frames if dict(f).get("Event") == event)


async def _bridged_call(sim: AsteriskSim, agi: TinyAgiServer) -> tuple[AmiClient, str]:
    """A logged-in AMI client and the gw-out `;2` of an answered, bridged call."""
    url = RECORDING_AGI.replace("127.0.0.1:4573", f"127.0.0.1:{agi.port}")
    sim.add_context(ContextConfig("gw-out", "recording", url))
    client = await AmiClient.connect(sim.ami_port)
    client.send(LOGIN)
    await client.wait_for(_is("FullyBooted"))
    client.send(
        _action(
            "Originate",
            "o",
            Channel="Local/150@gw-out",
            Context="sim-caller",
            Exten="s",
            Async="true",
        )
    )
    entered = await client.wait_for(
        lambda f: dict(f).get("Event") == "BridgeEnter" and "@gw-out" in dict(f)["Channel"]
    )
    return client, dict(entered)["Channel"]


async def _reply(client: AmiClient, action_id: str) -> dict[str, str]:
    return dict(await client.wait_for(lambda f: dict(f).get("ActionID") == action_id))


async def test_hook_repeats_each_interval_and_obeys_off_and_on(make_sim: SimFactory) -> None:
    sim = await make_sim(live_dangerously=True)
    async with TinyAgiServer(gw_auth_ok) as agi:
        client, chan = await _bridged_call(sim, agi)
        try:
            hook = "PERIODIC_HOOK(gw-prompts,warning,4)"
            client.send(_action("Getvar", "on", Channel=chan, Variable=hook))
            assert (await _reply(client, "on"))["Value"] == "0"
            # fires at once, then again 4 s later: two prompts played into the call
            await client.wait_for(lambda f: _count(client, "ChanSpyStop") >= 2, timeout=5)
            client.send(
                _action("Setvar", "off", Channel=chan, Variable="PERIODIC_HOOK(0)", Value="off")
            )
            assert (await _reply(client, "off"))["Message"] == "Variable Set"
            started = _count(client, "ChanSpyStart")
            off_at = sim.clock.now()
            while sim.clock.now() < off_at + 9:  # more than two intervals, sim time
                await asyncio.sleep(0.05)
            assert _count(client, "ChanSpyStart") == started
            client.send(
                _action("Setvar", "reon", Channel=chan, Variable="PERIODIC_HOOK(0)", Value="on")
            )
            await _reply(client, "reon")
            # the interval has long passed: the hook fires on the next frame
            await client.wait_for(lambda f: _count(client, "ChanSpyStart") > started, timeout=3)
        finally:
            await client.close()
    starts = [dict(f) for f in client.frames if dict(f).get("Event") == "ChanSpyStart"]
    assert {s["SpyeeChannel"] for s in starts} == {chan}
    assert all(s["SpyerChannel"].startswith(HOOK_CHANNEL) for s in starts)
    assert not [
        f
        for f in client.frames
        if "PERIODIC_HOOK" in dict(f).get("Variable", "") and dict(f).get("Event") == "VarSet"
    ]


async def test_bad_hook_writes_are_not_set(make_sim: SimFactory) -> None:
    sim = await make_sim(live_dangerously=True)
    async with TinyAgiServer(gw_auth_ok) as agi:
        client, chan = await _bridged_call(sim, agi)
        try:
            client.send(_action("Getvar", "bad", Channel=chan, Variable="PERIODIC_HOOK(x,y)"))
            bad = await _reply(client, "bad")
            client.send(
                _action("Setvar", "s1", Channel=chan, Variable="PERIODIC_HOOK(7)", Value="off")
            )
            client.send(
                _action(
                    "Getvar", "g", Channel=chan, Variable="PERIODIC_HOOK(gw-prompts,warning,3600)"
                )
            )
            client.send(
                _action("Setvar", "s2", Channel=chan, Variable="PERIODIC_HOOK(0)", Value="maybe")
            )
            replies = [await _reply(client, a) for a in ("s1", "g", "s2")]
        finally:
            await client.close()
    assert bad["Response"] == "Success" and bad["Value"] == ""  # no interval: no hook
    assert [r["Response"] for r in replies] == ["Error", "Success", "Error"]
    assert replies[0]["Message"] == replies[2]["Message"] == "Variable not set"
    assert replies[1]["Value"] == "0"  # the failed read did not use up an id


async def test_cut_prompt_leaves_the_call_up_and_hook_ends_with_channel(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(live_dangerously=True)
    async with TinyAgiServer(gw_auth_ok) as agi:
        client, chan = await _bridged_call(sim, agi)
        try:
            client.send(
                _action(
                    "Getvar", "on", Channel=chan, Variable="PERIODIC_HOOK(gw-prompts,warning,3600)"
                )
            )
            await client.wait_for(_is("ChanSpyStart"))
            spyer = next(
                dict(f)["Channel"]
                for f in client.frames
                if _is("Newchannel")(f)
                and dict(f)["Channel"].endswith(";2")
                and dict(f)["Channel"].startswith(HOOK_CHANNEL)
            )
            client.send(_action("Hangup", "cut", Channel=spyer))
            await client.wait_for(_is("Hangup", Channel=spyer))
            await client.wait_for(_is("Hangup", Channel=spyer[:-1] + "1"))
            assert sim.world.find_channel(chan) is not None  # the call goes on
            assert list(sim.dialplan.hooks.hooks) == ["0"]
            client.send(_action("Hangup", "end", Channel=chan))
            await client.wait_for(_is("Hangup", Channel=chan))
            async with asyncio.timeout(3):
                while sim.dialplan.hooks.hooks:  # the hook went with its channel
                    await asyncio.sleep(0.01)
        finally:
            await client.close()
    assert _count(client, "ChanSpyStop") == 1
    hook_legs = {
        dict(f)["Channel"]
        for f in client.frames
        if _is("Hangup")(f) and dict(f)["Channel"].startswith(HOOK_CHANNEL)
    }
    assert hook_legs == {spyer, spyer[:-1] + "1"}

"""panoramisk 1.4, an AMI client nobody here wrote, talks to the simulator.

Workarounds live here, not in panoramisk: only `panoramisk.manager` is imported (its
fast_agi module is not needed), and since `connect()` returns before the login is done,
the test waits for the `on_login` callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from panoramisk.manager import Manager

from sim.dialplan import RECORDING_AGI, ContextConfig
from sim.simulator import AsteriskSim
from tests.sim.agi_server import TinyAgiServer, gw_auth_ok
from tests.sim.conftest import SimFactory


@pytest.fixture
async def sim_with_agi(make_sim: SimFactory) -> AsyncIterator[AsteriskSim]:
    sim = await make_sim()
    async with TinyAgiServer(gw_auth_ok) as agi:
        url = RECORDING_AGI.replace("127.0.0.1:4573", f"127.0.0.1:{agi.port}")
        sim.add_context(ContextConfig("gw-out", "recording", url))
        yield sim


async def _manager(
    sim: AsteriskSim, secret: str = "gateway", wait: float = 2.0
) -> tuple[Manager, bool]:
    logged_in = asyncio.Event()
    manager = Manager(
        loop=asyncio.get_running_loop(),
        host="127.0.0.1",
        port=sim.ami_port,
        username="gateway",
        secret=secret,
        ping_delay=3600,
        reconnect_timeout=3600,
        on_login=lambda m: logged_in.set(),
    )
    await manager.connect()
    try:
        await asyncio.wait_for(logged_in.wait(), wait)
    except TimeoutError:
        return manager, False
    return manager, True


async def test_login_ping_and_plain_actions(make_sim: SimFactory) -> None:
    sim = await make_sim()
    manager, ok = await _manager(sim)
    try:
        assert ok and manager.authenticated
        pong = await manager.send_action({"Action": "Ping"})
        assert pong.success and pong.ping == "Pong"
        got = await manager.send_action({"Action": "Getvar", "Variable": "GLOBAL_TEST"})
        assert got.value == "initial"
        cmd = await manager.send_action({"Action": "Command", "Command": "core show version"})
        assert "Asterisk 22.10.1" in str(cmd)
    finally:
        manager.close()


async def test_wrong_secret_is_refused(make_sim: SimFactory) -> None:
    sim = await make_sim()
    manager, ok = await _manager(sim, secret="wrong", wait=0.5)
    try:
        assert not ok and not manager.authenticated
    finally:
        manager.close()


async def test_originate_event_list_and_call_events(sim_with_agi: AsteriskSim) -> None:
    sim = sim_with_agi
    manager, ok = await _manager(sim)
    assert ok
    events: list[Any] = []
    manager.register_event("*", lambda m, e: events.append(e))
    try:
        answer = await manager.send_action(
            {
                "Action": "Originate",
                "Channel": "Local/150@gw-out",
                "Context": "sim-caller",
                "Exten": "s",
                "Priority": "1",
                "CallerID": '"Gateway Test" <5551234>',
                "Async": "true",
                "Variable": "GW_CALL_ID=pano-1",
            }
        )
        # panoramisk waits for the OriginateResponse carrying the same ActionID
        assert isinstance(answer, list)
        assert answer[0].message == "Originate successfully queued"
        assert answer[-1].event == "OriginateResponse"
        assert answer[-1].reason == "4"
        channels = await manager.send_action({"Action": "CoreShowChannels"})
        items = [m for m in channels if m.event == "CoreShowChannel"]
        assert len(items) == 4
        assert channels[-1].event == "CoreShowChannelsComplete"
        assert channels[-1].listitems == "4"
        g2 = next(m.channel for m in items if m.channel.endswith(";2") and "@gw-out" in m.channel)
        status = await manager.send_action(
            {"Action": "Status", "Channel": g2, "Variables": "GW_CALL_ID,GW_AUTH"}
        )
        entry = next(m for m in status if m.event == "Status")
        assert entry["Variable"] == ["GW_CALL_ID=pano-1", "GW_AUTH=OK"]  # repeated header
        assert entry.getdict("Variable")["gw_auth"] == "OK"
        hung = await manager.send_action({"Action": "Hangup", "Channel": g2})
        assert hung.message == "Channel Hungup"
        for _ in range(200):
            if sum(1 for e in events if e.event == "Hangup") == 4:
                break
            await asyncio.sleep(0.01)
        of_g2 = [e.event for e in events if e.get("Channel") == g2 and e.event != "Cdr"]
        assert of_g2[0] == "Newchannel" and of_g2[-1] == "Hangup"
        assert "BridgeEnter" in of_g2 and "BridgeLeave" in of_g2
        assert sum(1 for e in events if e.event == "Hangup") == 4
    finally:
        manager.close()

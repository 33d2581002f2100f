"""Supervisor changes reach a running campaign within one pacing tick.

Far ends ring and never answer, so calls in flight only change when the pacer places
some or the test hangs some up. Each check looks at the first tick that *started* after
the change was written: it must have paced with the new setting.
"""

from __future__ import annotations

import asyncio
import json
from datetime import time

import aiomqtt

from dialer.campaign import CallingWindow, Campaign, DialMode
from gateway.campaigns import CampaignHandle, TickRecord
from gateway.metrics import Metrics
from gateway.mqtt_events import MqttPublisher
from sim.farend import RandomFarEnd
from tests.e2e_dialer.conftest import (
    QUEUE,
    SITE,
    TENANT,
    TRUNK,
    DialerRig,
    RigFactory,
    zones_open_and_closed,
)
from tests.support.servers import MosquittoServer

SPEED = 20.0
AGENTS = 5


def in_flight(h: CampaignHandle) -> int:
    return len(h.runner.engine.pacing_input(0.0).ringing_call_ages)


async def first_tick_after(rig: DialerRig, h: CampaignHandle, started: int) -> TickRecord:
    """The tick numbered `started + 1`: the first to begin after the change."""
    await rig.wait_for("next tick", lambda: h.ticks_done > started + 1, 10)
    return next(r for r in h.history if r.number == started + 1)


async def test_pause_resume_and_max_ratio_apply_within_one_tick(
        dialer_rig: RigFactory, mosquitto_proc: MosquittoServer) -> None:
    async with dialer_rig(SPEED, dial_timeout=300) as rig:
        sim = rig.sim
        sim.set_far_end(RandomFarEnd(answer_probability=0.0, busy_rate=0.0,
                                     no_answer_ring=290))
        sim.queues.add_queue(QUEUE)
        for i in range(AGENTS):
            sim.queues.add_member(QUEUE, f"PJSIP/agent{i}")
        await rig.limits.settings.set_trunk_limit(TRUNK, 30)
        campaign = Campaign(TENANT, "sup", mode=DialMode.PREDICTIVE, trunk=TRUNK,
                            agent_queue=QUEUE, dial_timeout_s=300, max_ratio=1.0,
                            abandon_target=0.3, max_cps=20.0, max_channels=30,
                            window=CallingWindow(time(6, 0), time(18, 0)))
        await rig.add_campaign(campaign)
        open_zone, _ = zones_open_and_closed(sim.clock.now())
        await rig.import_rows(campaign, [(f"+49151{i:08d}", open_zone) for i in range(40)])
        ctl = rig.controls()

        received: list[dict[str, object]] = []

        async def listen() -> None:
            async with aiomqtt.Client("127.0.0.1", mosquitto_proc.port) as sub:
                await sub.subscribe(f"callgate/{SITE}/events/campaign/+/stats")
                async for msg in sub.messages:
                    assert isinstance(msg.payload, bytes)
                    received.append({"topic": str(msg.topic), **json.loads(msg.payload)})

        listener = asyncio.create_task(listen())
        publisher = MqttPublisher(f"mqtt://127.0.0.1:{mosquitto_proc.port}", SITE, Metrics())
        publisher.start()
        service = rig.start_service(mqtt=publisher)
        try:
            await rig.wait_for("runner", lambda: service.handle(TENANT, "sup") is not None, 10)
            h = service.handle(TENANT, "sup")
            assert h is not None

            # max_ratio 1: one call in flight per agent, then the ratio binds.
            await rig.wait_for("5 calls placed", lambda: any(
                r.placed == AGENTS for r in h.history), 10)
            await rig.wait_for("ratio binds", lambda: h.history[-1].placed == 0, 10)
            assert h.history[-1].limited_by == "max_ratio" and in_flight(h) == AGENTS
            assert rig.sim_calls() == AGENTS

            # Raised to 2: the very next tick dials 5 more.
            await ctl.set_max_ratio(TENANT, "sup", 2.0, by="test")
            tick = await first_tick_after(rig, h, h.ticks_started)
            assert (tick.max_ratio, tick.placed) == (2.0, AGENTS)
            assert in_flight(h) == 2 * AGENTS
            await rig.wait_for("10 calls in the simulator",
                               lambda: rig.sim_calls() == 2 * AGENTS, 10)

            # Paused, then 4 calls end: the room that frees up is not used.
            await ctl.pause(TENANT, "sup", by="test")
            tick = await first_tick_after(rig, h, h.ticks_started)
            assert (tick.paused, tick.placed, tick.limited_by) == (True, 0, "paused")
            dials = len(rig.originated)
            originated = [c for c in sim.world.live_channels()
                          if c.name.startswith("Local/") and "@callgate-dialer-" in c.name
                          and c.name.endswith(";1")]
            for ch in originated[:4]:
                sim.dialplan.request_hangup(ch, 16)
            await rig.wait_for("4 calls gone", lambda: in_flight(h) == 2 * AGENTS - 4, 10)
            seen = h.ticks_done
            await rig.wait_for("a few ticks", lambda: h.ticks_done >= seen + 5, 10)
            assert len(rig.originated) == dials
            assert all(r.paused and r.placed == 0 for r in h.history if r.number > tick.number)

            # Resumed: the next tick fills the room again.
            await ctl.resume(TENANT, "sup", by="test")
            tick = await first_tick_after(rig, h, h.ticks_started)
            assert (tick.paused, tick.placed) == (False, 4)
            await rig.wait_for("10 calls again",
                               lambda: rig.sim_calls() == 2 * AGENTS, 10)

            # The figures reach MQTT, and say what the supervisor did.
            await rig.wait_for("stats on MQTT", lambda: any(
                m.get("campaign_id") == "sup" and m.get("paused") is True
                for m in received), 10)
            last = received[-1]
            assert last["topic"] == f"callgate/{SITE}/events/campaign/sup/stats"
            assert last["tenant"] == TENANT and last["agents_ready"] == AGENTS
            figures = await service.site_figures()  # what the wallboard shows
            assert [(f.tenant, f.campaign_id) for f in figures] == [(TENANT, "sup")]
            history = await ctl.history(TENANT, "sup")
            assert [c.field for c in history][:3] == ["paused", "paused", "max_ratio"]
        finally:
            listener.cancel()
            await service.close()
            rig.service = None
            for ch in sim.world.live_channels():
                sim.dialplan.request_hangup(ch, 16)
            await rig.wait_for("simulator idle", lambda: rig.sim_calls() == 0, 10)
            async with asyncio.timeout(10):
                while await rig.in_use("trunk", TRUNK) != 0:
                    await asyncio.sleep(0.05)

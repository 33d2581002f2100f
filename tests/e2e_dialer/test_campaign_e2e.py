"""A predictive campaign run to the end through the simulated Asterisk.

200 callable leads, 5 agents, a trunk of 8 channels (the pacer would like more), far ends
that answer, ring out or are busy: every lead must end closed, retries must wait their
delay, leads outside their calling window and on the do-not-call list must never be
dialled, the trunk must never carry more than 8 calls, and every counter must be back to 0
at the end.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import time

from dialer.campaign import CallingWindow, Campaign, DialMode, RetryDelays
from dialer.dnc import DncStore
from dialer.keys import CampaignKeys
from dialer.lead_store import LeadStore
from dialer.leads import LeadState, Outcome
from dialer.rules import retry_delay_s
from sim.farend import Dist, RandomFarEnd
from tests.e2e_dialer.conftest import QUEUE, TENANT, TRUNK, RigFactory, zones_open_and_closed

SPEED = 40.0
AGENTS = 5
TRUNK_CHANNELS = 7
SEATS = 10


def phone(i: int) -> str:
    return f"+49151{i:08d}"


async def test_predictive_campaign_runs_to_completion(dialer_rig: RigFactory) -> None:
    async with dialer_rig(SPEED, dial_timeout=20) as rig:
        sim = rig.sim
        sim.set_far_end(RandomFarEnd(ring=Dist.uniform(2, 8), talk=Dist.uniform(10, 30),
                                     answer_probability=0.7, busy_rate=0.15))
        sim.queues.add_queue(QUEUE, wrapup=2)
        for i in range(AGENTS):
            sim.queues.add_member(QUEUE, f"PJSIP/agent{i}", name=f"Agent {i}",
                                  ring=Dist.fixed(1), talk=Dist.fixed(600))

        s = rig.limits.settings
        await s.set_trunk_limit(TRUNK, TRUNK_CHANNELS)
        await s.set_tenant_limit(TENANT, "outbound", 50)
        await s.set_pool_size(TENANT, "dialer_seat", SEATS)

        campaign = Campaign(
            TENANT, "spring", mode=DialMode.PREDICTIVE, trunk=TRUNK, agent_queue=QUEUE,
            caller_id="4930123456", dial_timeout_s=20, max_attempts=3,
            retry=RetryDelays(busy_s=30, no_answer_s=60, failed_s=30, machine_s=60,
                              abandoned_s=30),
            window=CallingWindow(time(6, 0), time(18, 0)), connect_within_s=5.0,
            abandon_target=0.05, max_ratio=3.0, max_channels=30, max_cps=10.0,
            wrap_up_s=2.0)
        await rig.add_campaign(campaign)
        open_zone, closed_zone = zones_open_and_closed(sim.clock.now())
        callable_ = [phone(i) for i in range(1, 201)]
        dnc = [phone(i) for i in range(201, 211)]
        closed = [phone(i) for i in range(211, 221)]
        report = await rig.import_rows(
            campaign, [(p, open_zone) for p in callable_ + dnc] + [(p, closed_zone)
                                                                 for p in closed])
        assert (report.imported, report.rejected) == (220, 0)
        assert await DncStore(rig.redis).add(TENANT, dnc) == []

        service = rig.start_service()
        samples: list[tuple[int, int]] = []  # (trunk in use, calls up in the simulator)

        async def sample() -> None:
            while True:
                samples.append((await rig.in_use("trunk", TRUNK), rig.sim_calls()))
                await asyncio.sleep(0.01)

        sampler = asyncio.create_task(sample())
        tracked = callable_ + dnc
        try:
            async with asyncio.timeout(100):
                while True:
                    leads = await rig.leads(campaign, tracked)
                    if all(lead.state.closed for lead in leads.values()):
                        break
                    await asyncio.sleep(0.25)
        finally:
            sampler.cancel()
        handle = service.handle(TENANT, "spring")
        assert handle is not None
        stats = handle.stats()
        await service.close()
        rig.service = None

        # Nothing is left up and every counter is back to 0.
        await rig.wait_for("simulator idle", lambda: rig.sim_calls() == 0, 20)

        async def counters() -> list[int]:
            return [await rig.in_use("trunk", TRUNK),
                    await rig.in_use("tenant_outbound", TENANT),
                    await rig.in_use("pool", "dialer_seat", TENANT)]

        async with asyncio.timeout(10):
            while await counters() != [0, 0, 0]:
                await asyncio.sleep(0.05)

        # The trunk was the binding limit, and it held.
        assert service.placer.results["trunk_full"] > 0
        assert max(t for t, _ in samples) <= TRUNK_CHANNELS
        assert max(c for _, c in samples) <= TRUNK_CHANNELS
        assert max(t for t, _ in samples) == TRUNK_CHANNELS

        # Every callable lead ended closed; DNC leads blocked without a dial; leads whose
        # window is closed are untouched and due when it opens.
        leads = await rig.leads(campaign, callable_ + dnc + closed)
        store, keys = LeadStore(rig.redis), CampaignKeys(TENANT, "spring")
        for p in dnc:
            assert (leads[p].state, leads[p].attempts) == (LeadState.BLOCKED, 0)
        now = sim.clock.now()
        for p in closed:
            lead = leads[p]
            assert (lead.state, lead.attempts) == (LeadState.PENDING, 0)
            assert lead.next_at is not None and lead.next_at > now + 3600
        dialled = {req.channel.split("/", 1)[1].split("@", 1)[0] for req in rig.originated}
        assert dialled <= set(callable_)
        assert all(req.channel.endswith("@callgate-dialer") for req in rig.originated)
        assert all(req.channel_id for req in rig.originated)

        # Attempts: each one recorded, retries never before their delay.
        outcomes: dict[Outcome, int] = {}
        retried = 0
        for p in callable_:
            lead = leads[p]
            assert lead.state in (LeadState.DONE, LeadState.EXHAUSTED)
            attempts = await store.attempts(keys, p)
            assert len(attempts) == lead.attempts >= 1
            if lead.state is LeadState.EXHAUSTED:
                assert lead.attempts == campaign.max_attempts
            for a in attempts:
                outcomes[a.outcome] = outcomes.get(a.outcome, 0) + 1
            for prev, nxt in itertools.pairwise(attempts):
                delay = retry_delay_s(campaign, prev.outcome)
                assert delay is not None
                assert nxt.at >= prev.at + prev.duration_s + delay - 1e-6, (p, prev, nxt)
                retried += 1
        assert retried >= 20
        assert outcomes.get(Outcome.CONNECTED, 0) >= 150
        assert outcomes.get(Outcome.BUSY, 0) > 0 and outcomes.get(Outcome.NO_ANSWER, 0) > 0
        assert sum(outcomes.values()) == len(rig.originated)
        assert stats.dials == len(rig.originated)
        print(f"\ndialer e2e: {len(rig.originated)} dials, outcomes "
              f"{ {k.value: v for k, v in sorted(outcomes.items())} }, "
              f"occupancy {stats.occupancy:.2f}, abandon {stats.abandon_rate:.3f}, "
              f"placements {dict(service.placer.results)}")

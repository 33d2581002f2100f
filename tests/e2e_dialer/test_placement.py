"""Placement edge cases: limits refuse before anything is dialled, an Originate that
Asterisk cannot even start, and how unanswered calls are classified."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import time

import pytest

from dialer.campaign import CallingWindow, Campaign, DialMode
from dialer.keys import CampaignKeys
from dialer.lead_store import LeadStore
from dialer.leads import LeadState, Outcome
from gateway.campaigns.outcomes import failure_outcome
from tests.e2e_dialer.conftest import QUEUE, TENANT, TRUNK, RigFactory, zones_open_and_closed

LEADS = [f"+49151{i:08d}" for i in range(1, 4)]


@pytest.mark.parametrize(("statuses", "cause", "reason", "outcome"), [
    (("NOANSWER", "NOANSWER"), 16, 0, Outcome.NO_ANSWER),  # c1: Dial timeout
    (("CANCEL",), 19, 3, Outcome.NO_ANSWER),  # c2: Originate timeout
    (("BUSY", "NOANSWER"), 17, 0, Outcome.BUSY),  # c3: the Originate's own DialEnd too
    (("CONGESTION", "NOANSWER"), 34, 0, Outcome.FAILED),  # c5
    ((), None, 5, Outcome.BUSY),  # no channel at all, OriginateResponse says busy
    ((), None, 0, Outcome.FAILED),
])
def test_unanswered_call_outcome(statuses: tuple[str, ...], cause: int | None, reason: int,
                                 outcome: Outcome) -> None:
    assert failure_outcome(statuses, cause, reason) is outcome


async def test_refused_by_limits_then_unstartable_originate(dialer_rig: RigFactory) -> None:
    async with dialer_rig(20.0) as rig:
        rig.sim.queues.add_queue(QUEUE)
        rig.sim.queues.add_member(QUEUE, "PJSIP/agent0")
        s = rig.limits.settings
        await s.set_trunk_limit(TRUNK, 10)
        await s.set_tenant_limit(TENANT, "outbound", 0)
        # A channel technology the (simulated) Asterisk cannot originate: no channel is
        # ever created, only OriginateResponse Failure.
        campaign = Campaign(TENANT, "broken", mode=DialMode.PROGRESSIVE, trunk=TRUNK,
                            agent_queue=QUEUE, dial_string="DAHDI/g1/{number}",
                            max_attempts=1, window=CallingWindow(time(6, 0), time(18, 0)))
        await rig.add_campaign(campaign)
        zone, _ = zones_open_and_closed(rig.sim.clock.now())
        await rig.import_rows(campaign, [(p, zone) for p in LEADS])
        service = rig.start_service()

        # Tenant outbound limit 0: refused by limits, nothing dialled, leads kept pending.
        await rig.wait_for("refusals", lambda: service.placer.results["tenant_limit"] >= 3, 10)
        assert rig.originated == []
        leads = await rig.leads(campaign, LEADS)
        assert all(lead.state is LeadState.PENDING and lead.attempts == 0
                   for lead in leads.values())

        # Allowed now: the Originate fails before any channel; the lead gets a failed
        # attempt and the slots come back at once (no hang-up will ever release them).
        await s.set_tenant_limit(TENANT, "outbound", None)
        store, keys = LeadStore(rig.redis), CampaignKeys(TENANT, "broken")
        for lead in leads.values():  # due now rather than after the refusal delay
            await store.save(keys, replace(lead, next_at=rig.sim.clock.now()))
        async with asyncio.timeout(20):
            while not all(lead.state is LeadState.EXHAUSTED
                          for lead in (await rig.leads(campaign, LEADS)).values()):
                await asyncio.sleep(0.05)
        for p in LEADS:
            [attempt] = await store.attempts(keys, p)
            assert attempt.outcome is Outcome.FAILED
        assert all(req.channel.startswith("DAHDI/g1/+49151") for req in rig.originated)
        assert await rig.in_use("trunk", TRUNK) == 0
        assert await rig.in_use("tenant_outbound", TENANT) == 0
        assert len(service.book) == 0

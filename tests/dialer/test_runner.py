"""The campaign runner against a real Redis, with the gateway played by recording doubles."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from dialer.agents import QueueEvent
from dialer.campaign import Campaign, DialMode, RetryDelays
from dialer.campaign_store import CampaignStore
from dialer.clock import ManualClock
from dialer.controls import SupervisorControls
from dialer.dnc import DncStore
from dialer.keys import CampaignKeys
from dialer.lead_store import LeadRow, LeadStore
from dialer.leads import Lead, LeadState, Outcome
from dialer.placement import PlaceResult
from dialer.runner import CampaignRunner

NOW = 1_780_326_000.0  # 2026-06-01 15:00 UTC: 11:00 in New York
QUEUE = "sales"
PHONES = [f"+1212555{i:04d}" for i in range(100, 110)]


@dataclass
class Placer:
    """Stands in for the gateway: records what it was asked to originate."""

    deny: set[str] = field(default_factory=set)
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def place(self, lead: Lead, campaign: Campaign, *, call_id: str,
                    agent: str | None = None) -> PlaceResult:
        if lead.phone in self.deny:
            return PlaceResult(False, "trunk_full", retry_after_s=60)
        self.calls.append((call_id, lead.phone, agent))
        return PlaceResult(True)


@dataclass
class Apology:
    calls: list[str] = field(default_factory=list)

    async def apologise(self, call_id: str, campaign: Campaign) -> None:
        self.calls.append(call_id)


@dataclass
class Rig:
    redis: aioredis.Redis
    clock: ManualClock
    placer: Placer
    apology: Apology
    runner: CampaignRunner
    controls: SupervisorControls
    leads: LeadStore
    keys: CampaignKeys

    async def agents(self, n: int) -> None:
        for i in range(n):
            await self.runner.on_queue_event(QueueEvent.of(
                "QueueMemberAdded", Queue=QUEUE, Interface=f"PJSIP/60{i:02d}", Status=1,
                Paused=0, InCall=0))

    async def connect(self, call_id: str, agent: str = "PJSIP/6000") -> None:
        await self.runner.on_queue_event(QueueEvent.of(
            "AgentConnect", Queue=QUEUE, Interface=agent, Linkedid=call_id))

    async def complete(self, call_id: str, agent: str = "PJSIP/6000") -> None:
        await self.runner.on_queue_event(QueueEvent.of(
            "AgentComplete", Queue=QUEUE, Interface=agent, Linkedid=call_id, TalkTime=60))

    async def lead(self, phone: str) -> Lead:
        lead = await self.leads.get(self.keys, phone)
        assert lead is not None
        return lead


async def make_rig(redis: aioredis.Redis, campaign: Campaign,
                   phones: list[str] = PHONES) -> Rig:
    await CampaignStore(redis).put(campaign)
    keys = CampaignKeys(campaign.tenant, campaign.campaign_id)
    leads = LeadStore(redis)
    await leads.import_batch(keys, [LeadRow(p, ("America/New_York",), i + 2, NOW - 60 + i)
                                    for i, p in enumerate(phones)])
    clock = ManualClock(NOW)
    placer, apology = Placer(), Apology()
    runner = CampaignRunner(redis, campaign.tenant, campaign.campaign_id, placer=placer,
                            apology=apology, clock=clock, owner="gw-1")
    await runner.start()
    controls = SupervisorControls(redis, CampaignStore(redis), clock)
    return Rig(redis, clock, placer, apology, runner, controls, leads, keys)


def campaign(**kw: object) -> Campaign:
    base: dict[str, object] = dict(tenant="acme", campaign_id="spring",
                                   mode=DialMode.PROGRESSIVE, agent_queue=QUEUE,
                                   retry=RetryDelays(busy_s=900), wrap_up_s=0.0)
    base.update(kw)
    return Campaign(**base)  # type: ignore[arg-type]


@pytest.fixture
async def rig(redis_client: aioredis.Redis) -> Rig:
    return await make_rig(redis_client, campaign())


async def test_progressive_dials_one_lead_per_ready_agent_and_records_outcomes(
        rig: Rig) -> None:
    await rig.agents(2)
    plan = await rig.runner.tick()
    assert plan.place == 2
    assert [phone for _, phone, _ in rig.placer.calls] == PHONES[:2]  # oldest due first
    (call_a, phone_a, _), (call_b, phone_b, _) = rig.placer.calls
    assert (await rig.lead(phone_a)).state is LeadState.DIALING
    assert (await rig.runner.tick()).place == 0  # both agents already have a call each

    rig.clock.advance(12)
    await rig.runner.call_answered(call_a)
    await rig.connect(call_a)
    assert (await rig.lead(phone_a)).state is LeadState.TALKING
    await rig.runner.call_failed(call_b, Outcome.BUSY)
    rig.clock.advance(60)
    await rig.complete(call_a)

    done = await rig.lead(phone_a)
    assert done.state is LeadState.DONE
    [attempt] = await rig.leads.attempts(rig.keys, phone_a)
    assert attempt.outcome is Outcome.CONNECTED and attempt.duration_s == pytest.approx(72)
    assert attempt.call_id == call_a and attempt.agent == "PJSIP/6000"
    busy = await rig.lead(phone_b)
    # The busy delay runs from the end of the call.
    assert (busy.state, busy.attempts, busy.next_at) == (LeadState.PENDING, 1, NOW + 12 + 900)

    s = rig.runner.stats()
    assert (s.dials, s.answers, s.connected, s.abandoned) == (2, 1, 1, 0)
    assert s.answer_rate == 0.5 and s.agents_ready == 2


async def test_pause_takes_effect_on_the_next_tick_and_is_logged_with_who(rig: Rig) -> None:
    await rig.agents(3)
    with capture_logs() as logs:
        await rig.controls.pause("acme", "spring", by="supervisor:maria")
    assert (await rig.runner.tick()).place == 0
    assert [e for e in logs if e["event"] == "campaign_changed"] == [{
        "event": "campaign_changed", "log_level": "info", "tenant": "acme",
        "campaign": "spring", "by": "supervisor:maria", "field": "paused", "old": "0",
        "new": "1"}]
    await rig.controls.resume("acme", "spring", by="supervisor:maria")
    assert (await rig.runner.tick()).place == 3
    history = await rig.controls.history("acme", "spring")
    assert [(h.field, h.new, h.by) for h in history] == [
        ("paused", "0", "supervisor:maria"), ("paused", "1", "supervisor:maria")]


async def test_mode_and_ratio_changes_apply_on_the_next_tick(
        redis_client: aioredis.Redis) -> None:
    rig = await make_rig(redis_client, campaign(max_cps=20.0))
    await rig.agents(4)
    await rig.controls.set_mode("acme", "spring", "predictive", by="sup")
    plan = await rig.runner.tick()
    assert rig.runner.campaign.mode is DialMode.PREDICTIVE
    assert plan.place > 4  # dials ahead of the 4 ready agents, as progressive never would

    await redis_client.flushall()
    rig = await make_rig(redis_client, campaign(mode=DialMode.PREDICTIVE, max_cps=20.0))
    await rig.agents(4)
    await rig.controls.set_max_ratio("acme", "spring", 1.0, by="sup")
    plan = await rig.runner.tick()
    assert plan.place == 4 and plan.decision.limited_by == "max_ratio"


async def test_bad_supervisor_change_is_refused_and_changes_nothing(rig: Rig) -> None:
    from dialer.campaign import CampaignError

    with pytest.raises(CampaignError):
        await rig.controls.set_abandon_target("acme", "spring", 7.0, by="sup")
    assert (await CampaignStore(rig.redis).require("acme", "spring")).abandon_target == 0.03


async def test_dnc_numbers_are_blocked_not_dialled(rig: Rig) -> None:
    await DncStore(rig.redis).add("acme", ["(212) 555-0100"])
    await DncStore(rig.redis).add(None, ["212 555 0101"])  # global list
    await rig.agents(3)
    await rig.runner.tick()
    assert [phone for _, phone, _ in rig.placer.calls] == [PHONES[2]]
    assert (await rig.lead(PHONES[0])).state is LeadState.BLOCKED
    assert (await rig.lead(PHONES[1])).state is LeadState.BLOCKED


async def test_a_call_refused_by_limits_is_not_an_attempt(rig: Rig) -> None:
    rig.placer.deny.add(PHONES[0])
    await rig.agents(1)
    plan = await rig.runner.tick()
    assert plan.place == 1 and rig.placer.calls == []
    lead = await rig.lead(PHONES[0])
    assert (lead.state, lead.attempts, lead.next_at) == (LeadState.PENDING, 0, NOW + 60)
    assert rig.runner.stats().dials == 0
    assert (await rig.runner.tick()).place == 1  # the agent is still free
    assert [phone for _, phone, _ in rig.placer.calls] == [PHONES[1]]


async def test_answered_call_without_agent_in_time_is_abandoned_with_apology(
        redis_client: aioredis.Redis) -> None:
    rig = await make_rig(redis_client, campaign(mode=DialMode.PREDICTIVE, max_ratio=1.0))
    await rig.agents(1)
    await rig.runner.tick()
    call_id, phone, _ = rig.placer.calls[0]
    await rig.runner.call_answered(call_id)
    rig.clock.advance(2.5)  # no agent connected within 2 s
    await rig.runner.tick()
    assert rig.apology.calls == [call_id]
    rig.clock.advance(5)
    await rig.runner.call_ended(call_id)
    lead = await rig.lead(phone)
    [attempt] = await rig.leads.attempts(rig.keys, phone)
    assert attempt.outcome is Outcome.ABANDONED
    assert lead.state is LeadState.PENDING and lead.attempts == 1
    s = rig.runner.stats()
    assert (s.answers, s.abandoned, s.abandon_rate) == (1, 1, 1.0)
    # The window counters survive a restart of the runner.
    again = CampaignRunner(redis_client, "acme", "spring", placer=rig.placer,
                           apology=rig.apology, clock=rig.clock, owner="gw-2")
    await again.start()
    assert again.stats().abandoned == 1


async def test_only_the_lease_holder_places_calls(redis_client: aioredis.Redis) -> None:
    rig = await make_rig(redis_client, campaign())
    other = CampaignRunner(redis_client, "acme", "spring", placer=rig.placer,
                           apology=rig.apology, clock=rig.clock, owner="gw-2")
    await other.start()
    for r in (rig.runner, other):
        await r.on_queue_event(QueueEvent.of("QueueMemberAdded", Queue=QUEUE,
                                             Interface="PJSIP/6000", Status=1, Paused=0))
    await rig.runner.tick()
    await other.tick()
    assert len(rig.placer.calls) == 1


async def test_preview_offer_accept_and_skip(redis_client: aioredis.Redis) -> None:
    rig = await make_rig(redis_client, campaign(mode=DialMode.PREVIEW))
    await rig.agents(1)
    assert (await rig.runner.tick()).place == 0  # preview never dials by itself
    offer = await rig.runner.offer_preview("PJSIP/6000")
    assert offer is not None and offer.lead.phone == PHONES[0]
    assert (await rig.lead(PHONES[0])).state is LeadState.OFFERED
    assert (await rig.runner.accept_preview(PHONES[0], "PJSIP/6001")).reason == "offer_expired"

    result = await rig.runner.accept_preview(PHONES[0], "PJSIP/6000")
    assert result.placed
    call_id, phone, agent = rig.placer.calls[0]
    assert (phone, agent) == (PHONES[0], "PJSIP/6000")  # the agent's phone is called first
    await rig.runner.call_answered(call_id)
    rig.clock.advance(30)
    await rig.runner.call_ended(call_id)
    assert (await rig.lead(PHONES[0])).state is LeadState.DONE
    assert rig.runner.stats().abandoned == 0

    second = await rig.runner.offer_preview("PJSIP/6000")
    assert second is not None and second.lead.phone == PHONES[1]
    skipped = await rig.runner.skip_preview(PHONES[1], "PJSIP/6000")
    assert skipped is not None
    assert (skipped.state, skipped.attempts) == (LeadState.PENDING, 0)


async def test_expired_offer_goes_back_to_the_due_list(redis_client: aioredis.Redis) -> None:
    rig = await make_rig(redis_client, campaign(mode=DialMode.PREVIEW), phones=PHONES[:1])
    offer = await rig.runner.offer_preview("PJSIP/6000")
    assert offer is not None
    assert await rig.runner.offer_preview("PJSIP/6001") is None  # still held
    rig.clock.advance(rig.runner.offer_ttl_s + 1)
    again = await rig.runner.offer_preview("PJSIP/6001")
    assert again is not None and again.lead.phone == PHONES[0]
    assert (await rig.runner.accept_preview(PHONES[0], "PJSIP/6000")).reason == "offer_expired"


async def test_runner_never_sees_another_tenants_campaign(redis_client: aioredis.Redis) -> None:
    await make_rig(redis_client, campaign())
    assert await CampaignStore(redis_client).get("globex", "spring") is None
    assert [c.campaign_id for c in await CampaignStore(redis_client).list("globex")] == []


async def test_lead_of_a_lost_call_is_recovered_after_a_gateway_crash(
        redis_client: aioredis.Redis) -> None:
    rig = await make_rig(redis_client, campaign(), phones=PHONES[:1])
    await rig.agents(1)
    await rig.runner.tick()
    assert (await rig.lead(PHONES[0])).state is LeadState.DIALING
    # The gateway dies; its successor never hears of the call.
    rig.clock.advance(30 + 300 + 1)
    successor = CampaignRunner(redis_client, "acme", "spring", placer=rig.placer,
                               apology=rig.apology, clock=rig.clock, owner="gw-2")
    await successor.start()
    await successor.on_queue_event(QueueEvent.of("QueueMemberAdded", Queue=QUEUE,
                                                 Interface="PJSIP/6000", Status=1, Paused=0))
    await redis_client.delete(rig.keys.lease)
    await successor.tick()
    lead = await rig.lead(PHONES[0])
    [attempt] = await rig.leads.attempts(rig.keys, PHONES[0])
    assert attempt.outcome is Outcome.FAILED
    assert (lead.state, lead.attempts) == (LeadState.PENDING, 1)
    assert lead.next_at == pytest.approx(rig.clock.now() + 1800)  # the failed-call delay

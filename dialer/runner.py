"""Runs one campaign: the pacing loop, the gateway's call reports, preview offers.

The runner is the I/O shell around `CampaignEngine`: every tick it re-reads the campaign
(so supervisor changes apply within one tick), asks the engine how many calls to start,
takes that many due leads from Redis, checks each against the dial rules and the DNC
lists, and hands them to the gateway's `CallPlacer`, which passes them through limits/.
Outcomes reported by the gateway become attempts on the leads.

Only the gateway holding the campaign's lease in Redis places calls, so several
gateways can run the same campaign's runner for fail-over.

Wiring (gateway): for each AMI event of the campaign's queue call `on_queue_event`; when
the Originate is answered by a person (after AMD) call `call_answered`; when it ends
without a person call `call_failed` (busy / no_answer / failed / machine); on Hangup call
`call_ended`. Unknown call ids are ignored, so every event can be fed to every runner.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.resources import files

import structlog

from dialer.agents import AmiEvent
from dialer.campaign import Campaign, DialMode
from dialer.campaign_store import CampaignNotFound, CampaignStore
from dialer.clock import Clock
from dialer.dnc import DncStore
from dialer.engine import CallOutcome, CampaignEngine, Connected, TickPlan
from dialer.keys import CampaignKeys
from dialer.lead_store import LeadStore
from dialer.leads import Attempt, Lead, LeadState, LeadTransitionError, Outcome, transition
from dialer.placement import ApologyPlayer, CallPlacer, PlaceResult
from dialer.redis_types import RedisClient, text
from dialer.rules import may_dial, next_dial_time, settle_attempt
from dialer.stats import CampaignStats

log = structlog.get_logger(__name__)

# A lead whose call outcome never arrives becomes due again this long after its dial
# timeout (gateway crash); an answered one after this long.
RECOVERY_AFTER_DIAL_S = 300.0
RECOVERY_AFTER_ANSWER_S = 4 * 3600.0
DENIED_RETRY_S = 30.0
OFFER_TTL_S = 120.0


@dataclass(frozen=True)
class PreviewOffer:
    lead: Lead
    agent: str
    expires_at: float


class CampaignRunner:
    def __init__(self, redis: RedisClient, tenant: str, campaign_id: str, *,
                 placer: CallPlacer, apology: ApologyPlayer, clock: Clock,
                 owner: str | None = None, tick_s: float = 1.0,
                 offer_ttl_s: float = OFFER_TTL_S) -> None:
        self.keys = CampaignKeys(tenant, campaign_id)
        self._r = redis
        self.campaigns = CampaignStore(redis)
        self.leads = LeadStore(redis)
        self.dnc = DncStore(redis)
        self._placer = placer
        self._apology = apology
        self._clock = clock
        self.owner = owner or uuid.uuid4().hex
        self.tick_s = tick_s
        self.offer_ttl_s = offer_ttl_s
        self._lease = redis.register_script(_lua("lease"))
        self._engine: CampaignEngine | None = None
        self._log = log.bind(tenant=tenant, campaign=campaign_id)
        self._ticks = 0

    # -- life cycle ------------------------------------------------------------------

    @property
    def engine(self) -> CampaignEngine:
        if self._engine is None:
            raise RuntimeError("CampaignRunner.start() was not awaited")
        return self._engine

    @property
    def campaign(self) -> Campaign:
        return self.engine.campaign

    async def start(self) -> None:
        campaign = await self.campaigns.require(self.keys.tenant, self.keys.campaign_id)
        self._engine = CampaignEngine(campaign, self._clock.now())
        await self._load_window()
        self._log.info("campaign_runner_started", mode=campaign.mode.value, owner=self.owner)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set. A failing tick is logged and retried next tick."""
        if self._engine is None:
            await self.start()
        while not stop.is_set():
            try:
                await self.tick()
            except CampaignNotFound:
                self._log.warning("campaign_runner_stopped", reason="campaign deleted")
                return
            except Exception as exc:  # Redis down, a placer bug: keep the loop alive
                self._log.error("dialer_tick_failed", error=repr(exc))
            try:
                await asyncio.wait_for(stop.wait(), self.tick_s)
            except TimeoutError:
                pass

    async def tick(self) -> TickPlan:
        campaign = await self.campaigns.require(self.keys.tenant, self.keys.campaign_id)
        engine = self.engine
        window_changed = campaign.abandon_window is not engine.campaign.abandon_window
        engine.update_campaign(campaign)
        if window_changed:
            await self._load_window()
        leader = await self._hold_lease()
        now = self._clock.now()
        plan = engine.tick(now)
        if plan.abandon:
            await asyncio.gather(*(self._apologise(c, campaign) for c in plan.abandon))
        if leader and plan.place > 0:
            await self._place(plan.place, campaign, now)
        await self._flush_counters(now)
        self._ticks += 1
        return plan

    def stats(self) -> CampaignStats:
        return self.engine.stats(self._clock.now())

    # -- reports from the gateway ----------------------------------------------------

    async def on_queue_event(self, event: AmiEvent) -> None:
        result = self.engine.on_queue_event(event, self._clock.now())
        if isinstance(result, Connected):
            await self._set_state(result.lead_id, LeadState.TALKING,
                                  self._clock.now() + RECOVERY_AFTER_ANSWER_S)
        elif isinstance(result, CallOutcome):
            await self._finish(result)

    async def call_answered(self, call_id: str) -> None:
        now = self._clock.now()
        lead_id = self.engine.lead_of(call_id)
        self.engine.call_answered(call_id, now)
        if lead_id is not None:
            await self._set_state(lead_id, LeadState.ANSWERED, now + RECOVERY_AFTER_ANSWER_S)

    async def call_connected(self, call_id: str, agent: str) -> None:
        """For gateways that learn of the connection other than from queue events."""
        result = self.engine.call_connected(call_id, agent, self._clock.now())
        if result is not None:
            await self._set_state(result.lead_id, LeadState.TALKING,
                                  self._clock.now() + RECOVERY_AFTER_ANSWER_S)

    async def call_failed(self, call_id: str, outcome: Outcome | str) -> None:
        out = self.engine.call_failed(call_id, Outcome(outcome), self._clock.now())
        if out is not None:
            await self._finish(out)

    async def call_ended(self, call_id: str) -> None:
        out = self.engine.call_ended(call_id, self._clock.now())
        if out is not None:
            await self._finish(out)

    # -- preview ---------------------------------------------------------------------

    async def offer_preview(self, agent: str) -> PreviewOffer | None:
        """Reserve the next dialable lead for `agent` to look at; None if there is none."""
        campaign = await self.campaigns.require(self.keys.tenant, self.keys.campaign_id)
        if campaign.mode is not DialMode.PREVIEW or campaign.paused:
            self._log.info("preview_refused", agent=agent, mode=campaign.mode.value,
                           paused=campaign.paused)
            return None
        for _ in range(10):
            now = self._clock.now()
            claimed = await self.leads.claim(self.keys, 1, now, state=LeadState.OFFERED,
                                             hold_until=now + self.offer_ttl_s, holder=agent)
            if not claimed:
                return None
            lead, prev = claimed[0]
            usable = await self._vet([(lead, prev)], campaign, now)
            if usable:
                self._log.info("preview_offered", agent=agent, lead=lead.phone)
                return PreviewOffer(usable[0], agent, now + self.offer_ttl_s)
        return None

    async def accept_preview(self, phone: str, agent: str) -> PlaceResult:
        """The agent accepts: their phone is called first, then the lead."""
        campaign = await self.campaigns.require(self.keys.tenant, self.keys.campaign_id)
        now = self._clock.now()
        lead = await self._held_offer(phone, agent, now)
        if lead is None:
            return PlaceResult(False, "offer_expired")
        on_dnc = bool(await self.dnc.blocked(self.keys.tenant, [phone]))
        ok, reason = may_dial(lead, campaign, _dt(now), on_dnc=on_dnc)
        if not ok:
            await self._release(lead, campaign, now, reason, on_dnc)
            return PlaceResult(False, reason)
        dialing = replace(transition(lead, LeadState.DIALING),
                          next_at=now + campaign.dial_timeout_s + RECOVERY_AFTER_DIAL_S)
        await self.leads.save(self.keys, dialing)
        result = await self._dial(dialing, campaign, now, agent=agent)
        self._log.info("preview_accepted", agent=agent, lead=phone, placed=result.placed,
                       reason=result.reason)
        return result

    async def skip_preview(self, phone: str, agent: str) -> Lead | None:
        campaign = await self.campaigns.require(self.keys.tenant, self.keys.campaign_id)
        now = self._clock.now()
        lead = await self._held_offer(phone, agent, now)
        if lead is None:
            return None
        attempt = Attempt(now, Outcome.SKIPPED, 0.0, agent=agent)
        settled = settle_attempt(lead, attempt, campaign, _dt(now))
        await self.leads.save(self.keys, settled, attempt)
        self._log.info("preview_skipped", agent=agent, lead=phone)
        return settled

    async def _held_offer(self, phone: str, agent: str, now: float) -> Lead | None:
        lead = await self.leads.get(self.keys, phone)
        if (lead is None or lead.state is not LeadState.OFFERED or lead.offered_to != agent
                or (lead.next_at is not None and lead.next_at < now)):
            self._log.info("preview_offer_not_held", agent=agent, lead=phone)
            return None
        return lead

    # -- placing calls ---------------------------------------------------------------

    async def _place(self, n: int, campaign: Campaign, now: float) -> None:
        hold = now + campaign.dial_timeout_s + RECOVERY_AFTER_DIAL_S
        claimed = await self.leads.claim(self.keys, n, now, state=LeadState.DIALING,
                                         hold_until=hold)
        if not claimed:
            if self._ticks % 60 == 0:
                self._log.info("no_due_leads", wanted=n)
            return
        usable = await self._vet(claimed, campaign, now)
        await asyncio.gather(*(self._dial(lead, campaign, now) for lead in usable))

    async def _vet(self, claimed: list[tuple[Lead, LeadState]], campaign: Campaign,
                   now: float) -> list[Lead]:
        """Keep the claimed leads the rules allow; settle the others."""
        usable: list[Lead] = []
        blocked = await self.dnc.blocked(self.keys.tenant, [lead.phone for lead, _ in claimed])
        for lead, prev in claimed:
            if prev in (LeadState.DIALING, LeadState.ANSWERED, LeadState.TALKING):
                # Its outcome was never recorded (a gateway died mid-call): count a failed
                # attempt and let the rules decide when to try again.
                self._log.warning("lead_recovered", lead=lead.phone, previous=prev.value)
                attempt = Attempt(now, Outcome.FAILED, 0.0)
                settled = settle_attempt(replace(lead, state=LeadState.DIALING), attempt,
                                         campaign, _dt(now), on_dnc=lead.phone in blocked)
                await self.leads.save(self.keys, settled, attempt)
                continue
            on_dnc = lead.phone in blocked
            ok, reason = may_dial(lead, campaign, _dt(now), on_dnc=on_dnc)
            if ok:
                usable.append(lead)
            else:
                await self._release(lead, campaign, now, reason, on_dnc)
        return usable

    async def _release(self, lead: Lead, campaign: Campaign, now: float, reason: str,
                       on_dnc: bool) -> None:
        """A claimed lead the rules do not allow now: block, close, or reschedule it."""
        nxt = next_dial_time(lead, campaign, _dt(now), on_dnc=on_dnc)
        if on_dnc:
            state = LeadState.BLOCKED
        elif nxt is None:
            state = LeadState.EXHAUSTED
        else:
            state = LeadState.PENDING
        if reason == "campaign_paused":
            nxt, state = _dt(now), LeadState.PENDING
        updated = replace(lead, state=state, offered_to="",
                          next_at=nxt.timestamp() if nxt is not None else None)
        await self.leads.save(self.keys, updated)
        self._log.info("lead_not_dialled", lead=lead.phone, reason=reason,
                       state=state.value, next_at=updated.next_at)

    async def _dial(self, lead: Lead, campaign: Campaign, now: float, *,
                    agent: str | None = None) -> PlaceResult:
        call_id = uuid.uuid4().hex
        self.engine.call_placed(call_id, lead.phone, now, preview_agent=agent or "")
        try:
            result = await self._placer.place(lead, campaign, call_id=call_id, agent=agent)
        except Exception as exc:  # the placer must not take the pacing loop down
            self._log.error("call_place_failed", lead=lead.phone, call_id=call_id,
                            error=repr(exc))
            result = PlaceResult(False, "error")
        if result.placed:
            self._log.info("call_placed", lead=lead.phone, call_id=call_id,
                           agent=agent or "")
            return result
        self.engine.call_withdrawn(call_id)
        retry = result.retry_after_s if result.retry_after_s is not None else DENIED_RETRY_S
        await self.leads.save(self.keys, replace(lead, state=LeadState.PENDING, offered_to="",
                                                 next_at=now + retry))
        self._log.info("call_not_placed", lead=lead.phone, reason=result.reason,
                       retry_after_s=retry)
        return result

    async def _apologise(self, call_id: str, campaign: Campaign) -> None:
        try:
            await self._apology.apologise(call_id, campaign)
        except Exception as exc:
            self._log.error("apology_failed", call_id=call_id, error=repr(exc))

    # -- outcomes --------------------------------------------------------------------

    async def _finish(self, out: CallOutcome) -> None:
        campaign = self.engine.campaign
        lead = await self.leads.get(self.keys, out.lead_id)
        attempt = Attempt(out.placed_at, out.outcome, out.duration_s, out.call_id, out.agent)
        self._log.info("call_finished", call_id=out.call_id, lead=out.lead_id,
                       outcome=out.outcome.value, duration_s=round(out.duration_s, 1))
        if lead is None:
            self._log.warning("call_outcome_for_unknown_lead", call_id=out.call_id,
                              lead=out.lead_id)
            return
        on_dnc = bool(await self.dnc.blocked(self.keys.tenant, [lead.phone]))
        try:
            settled = settle_attempt(lead, attempt, campaign, _dt(out.ended_at),
                                     on_dnc=on_dnc)
        except LeadTransitionError as exc:
            self._log.warning("lead_outcome_conflict", lead=lead.phone, error=str(exc))
            settled = lead
        await self.leads.save(self.keys, settled, attempt)

    async def _set_state(self, phone: str, state: LeadState, hold_until: float) -> None:
        lead = await self.leads.get(self.keys, phone)
        if lead is None:
            return
        try:
            moved = transition(lead, state)
        except LeadTransitionError as exc:
            self._log.warning("lead_state_conflict", lead=phone, error=str(exc))
            return
        await self.leads.save(self.keys, replace(moved, next_at=hold_until))

    async def _load_window(self) -> None:
        raw = await self._r.hgetall(self.keys.window)
        self.engine.window.load((text(k), int(text(v))) for k, v in raw.items())

    async def _hold_lease(self) -> bool:
        ttl_ms = int(max(3.0, 5 * self.tick_s) * 1000)
        held = await self._lease(keys=[self.keys.lease], args=[self.owner, ttl_ms])
        return int(held) == 1

    async def _flush_counters(self, now: float) -> None:
        window = self.engine.window
        deltas = window.drain()
        gone = window.prune(now) if self._ticks % 60 == 0 else []
        if not deltas and not gone:
            return
        pipe = self._r.pipeline(transaction=False)
        for d in deltas:
            pipe.hincrby(self.keys.window, d.field, d.amount)
        if gone:
            pipe.hdel(self.keys.window, *gone)
        await pipe.execute()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _lua(name: str) -> str:
    return files("dialer").joinpath(f"{name}.lua").read_text(encoding="utf-8")

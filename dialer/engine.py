"""One campaign's dialling brain, without I/O (sans-IO).

The engine is told what happens (calls placed, answered, failed, connected, ended; queue
events) and when; on each pacing tick it says how many calls to start and which answered
calls have waited too long for an agent. `CampaignRunner` drives it against Redis and the
gateway; the discrete-event simulator drives the very same object, so the pacing that is
benchmarked is the pacing that runs.

Call ids: the gateway originates with `ChannelId=<call_id>`, so Asterisk's `Linkedid` in
queue events (AgentConnect, AgentComplete, QueueCallerAbandon) is the call id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import structlog

from dialer.agents import HANDLING, AgentBoard, AgentState, AmiEvent
from dialer.campaign import Campaign, DialMode
from dialer.estimates import CallEstimates
from dialer.leads import Outcome
from dialer.pacing import (
    BusyAgent,
    PacingDecision,
    PacingInput,
    PredictivePacer,
    PredictiveTuning,
    progressive,
)
from dialer.stats import CampaignStats, build_stats
from dialer.window import Counter, RollingCounts

log = structlog.get_logger(__name__)

NOT_LIVE = frozenset({Outcome.BUSY, Outcome.NO_ANSWER, Outcome.FAILED, Outcome.MACHINE})


class CallPhase(StrEnum):
    RINGING = "ringing"
    WAITING = "waiting"  # answered by a person, no agent yet
    CONNECTED = "connected"
    ABANDONED = "abandoned"  # waited past connect_within_s; apology, then hang-up


@dataclass
class _Call:
    call_id: str
    lead_id: str
    placed_at: float
    phase: CallPhase = CallPhase.RINGING
    answered_at: float | None = None
    connected_at: float | None = None
    agent: str = ""
    preview_agent: str = ""
    abandoned: bool = False


@dataclass(frozen=True)
class CallOutcome:
    """How a call ended, for the lead's attempt record."""

    call_id: str
    lead_id: str
    outcome: Outcome
    placed_at: float
    ended_at: float
    answered_at: float | None = None
    connected_at: float | None = None
    agent: str = ""

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended_at - self.placed_at)

    @property
    def talk_s(self) -> float:
        if self.connected_at is None:
            return 0.0
        return max(0.0, self.ended_at - self.connected_at)


@dataclass(frozen=True)
class Connected:
    """An answered call reached an agent (in time or, if late, counted as abandoned)."""

    call_id: str
    lead_id: str
    agent: str
    in_time: bool


@dataclass(frozen=True)
class TickPlan:
    place: int
    abandon: tuple[str, ...] = ()  # call ids to play the apology to and hang up
    decision: PacingDecision = field(default_factory=lambda: PacingDecision(0, "mode"))


class CampaignEngine:
    def __init__(self, campaign: Campaign, now: float, *,
                 estimates: CallEstimates | None = None,
                 tuning: PredictiveTuning | None = None) -> None:
        self._campaign = campaign
        self.board = AgentBoard(campaign.agent_queue, campaign.wrap_up_s)
        self.estimates = estimates or CallEstimates()
        self.pacer = PredictivePacer(tuning)
        self.window = RollingCounts(campaign.abandon_window)
        self._calls: dict[str, _Call] = {}
        self._tokens = max(1.0, campaign.max_cps)
        self._last_tick = now
        self.started_at = now
        self.last_decision = PacingDecision(0, "mode")

    @property
    def campaign(self) -> Campaign:
        return self._campaign

    def update_campaign(self, campaign: Campaign) -> None:
        """Take the store's current campaign (supervisor changes); effective this tick."""
        if campaign.abandon_window is not self._campaign.abandon_window:
            self.window = RollingCounts(campaign.abandon_window)
        self.board.default_wrap_up_s = campaign.wrap_up_s
        self._campaign = campaign

    # -- call lifecycle --------------------------------------------------------------

    def call_placed(self, call_id: str, lead_id: str, now: float, *,
                    preview_agent: str = "") -> None:
        self._calls[call_id] = _Call(call_id, lead_id, now, preview_agent=preview_agent)
        self._tokens = max(0.0, self._tokens - 1.0)
        self.window.add(Counter.DIALS, now)

    def call_withdrawn(self, call_id: str) -> None:
        """The gateway did not place the call after all (limits said no): forget it."""
        call = self._calls.pop(call_id, None)
        if call is not None:
            self.window.add(Counter.DIALS, call.placed_at, -1)
            self._tokens += 1.0

    def call_answered(self, call_id: str, now: float) -> None:
        """Answered by a person (after AMD, if any)."""
        call = self._calls.get(call_id)
        if call is None or call.phase is not CallPhase.RINGING:
            return
        call.answered_at = now
        self.window.add(Counter.LIVE, now)
        if call.preview_agent:
            # The agent is already on the line: a preview call cannot be abandoned.
            call.phase = CallPhase.CONNECTED
            call.connected_at = now
            call.agent = call.preview_agent
            self.window.add(Counter.CONNECTED, now)
            return
        self.estimates.observe_live(now - call.placed_at)
        call.phase = CallPhase.WAITING

    def call_failed(self, call_id: str, outcome: Outcome, now: float) -> CallOutcome | None:
        """Ended without reaching a person: busy, no answer, failed, answering machine."""
        if outcome not in NOT_LIVE:
            raise ValueError(f"call_failed takes {sorted(o.value for o in NOT_LIVE)}")
        call = self._calls.get(call_id)
        if call is None:
            return None
        if call.phase is not CallPhase.RINGING:
            return self.call_ended(call_id, now)
        del self._calls[call_id]
        if not call.preview_agent:
            self.estimates.observe_not_live(now - call.placed_at)
        return CallOutcome(call_id, call.lead_id, outcome, call.placed_at, now)

    def call_connected(self, call_id: str, agent: str, now: float) -> Connected | None:
        call = self._calls.get(call_id)
        if call is None or call.phase is CallPhase.CONNECTED:
            return None
        if call.phase is CallPhase.RINGING:  # AgentConnect overtook the answer report
            self.call_answered(call_id, now)
        if (call.phase is CallPhase.WAITING and call.answered_at is not None
                and now - call.answered_at > self._campaign.connect_within_s + 1e-6):
            call.phase = CallPhase.ABANDONED  # too late: counts as abandoned all the same
            self._judge(call, abandoned=True, now=now)
        call.agent = agent
        call.connected_at = now
        if call.phase is CallPhase.ABANDONED:
            log.warning("dialer_late_connect", campaign=self._campaign.campaign_id,
                        call_id=call_id, agent=agent)
        else:
            self._judge(call, abandoned=False, now=now)
            self.window.add(Counter.CONNECTED, now)
        in_time = call.phase is not CallPhase.ABANDONED
        call.phase = CallPhase.CONNECTED
        return Connected(call_id, call.lead_id, agent, in_time)

    def call_ended(self, call_id: str, now: float) -> CallOutcome | None:
        call = self._calls.pop(call_id, None)
        if call is None:
            return None
        if call.phase is CallPhase.RINGING:
            if not call.preview_agent:
                self.estimates.observe_not_live(now - call.placed_at)
            outcome = Outcome.NO_ANSWER
        elif call.phase is CallPhase.WAITING:
            self._judge(call, abandoned=True, now=now)  # hung up before reaching an agent
            outcome = Outcome.ABANDONED
        elif call.phase is CallPhase.ABANDONED:
            outcome = Outcome.ABANDONED
        else:
            outcome = Outcome.CONNECTED
            talk = now - (call.connected_at or now)
            if not call.preview_agent:
                self.estimates.observe_talk(talk)
            self.window.add(Counter.TALK_S, now, round(talk))
        return CallOutcome(call_id, call.lead_id, outcome, call.placed_at, now,
                           call.answered_at, call.connected_at, call.agent)

    def _judge(self, call: _Call, *, abandoned: bool, now: float) -> None:
        if abandoned:
            call.abandoned = True
            self.window.add(Counter.ABANDONED, now)
            log.info("call_abandoned", campaign=self._campaign.campaign_id,
                     tenant=self._campaign.tenant, call_id=call.call_id)
        target = self._campaign.abandon_target
        window_rate = self.window.rate(Counter.ABANDONED, Counter.LIVE, now)
        live = self.window.total(Counter.LIVE, now)
        self.pacer.observe_live_answer(abandoned,
                                       self.pacer.setpoint(target, window_rate, live))

    def on_queue_event(self, event: AmiEvent, now: float) -> CallOutcome | Connected | None:
        """Fold a queue event in; says what happened to one of this campaign's calls."""
        notice = self.board.apply(event, now)
        if notice is None or notice.call not in self._calls:
            return None
        if notice.kind == "connected":
            return self.call_connected(notice.call, notice.agent, now)
        return self.call_ended(notice.call, now)  # completed, caller_abandoned

    # -- pacing ----------------------------------------------------------------------

    def tick(self, now: float) -> TickPlan:
        c = self._campaign
        dt = max(0.0, now - self._last_tick)
        self._last_tick = now
        self._tokens = min(max(1.0, c.max_cps), self._tokens + c.max_cps * dt)
        self.board.advance(now)

        abandon: list[str] = []
        for call in self._calls.values():
            if (call.phase is CallPhase.WAITING and call.answered_at is not None
                    and now - call.answered_at > c.connect_within_s + 1e-6):
                call.phase = CallPhase.ABANDONED
                self._judge(call, abandoned=True, now=now)
                abandon.append(call.call_id)

        if c.paused:
            decision = PacingDecision(0, "paused")
        elif c.mode is DialMode.PREVIEW:
            decision = PacingDecision(0, "mode")
        else:
            inp = self.pacing_input(now)
            if c.mode is DialMode.PROGRESSIVE:
                decision = progressive(inp, c)
            else:
                rate = self.window.rate(Counter.ABANDONED, Counter.LIVE, now)
                live = self.window.total(Counter.LIVE, now)
                decision = self.pacer.decide(inp, self.estimates, c, rate, live)
        self.last_decision = decision
        return TickPlan(decision.place, tuple(abandon), decision)

    def pacing_input(self, now: float) -> PacingInput:
        ready = 0
        staffed = 0
        busy: list[BusyAgent] = []
        for a in self.board.agents():
            if a.state is AgentState.READY:
                ready += 1
                staffed += 1
            elif a.state in HANDLING:
                staffed += 1
                busy.append(BusyAgent(a.state, now - a.since, a.wrap_up_s,
                                      max(0.0, a.wrap_until - now)))
        ringing: list[float] = []
        waiting = 0
        for call in self._calls.values():
            if call.preview_agent:
                continue
            if call.phase is CallPhase.RINGING:
                ringing.append(now - call.placed_at)
            elif call.phase is CallPhase.WAITING:
                waiting += 1
        return PacingInput(ready_agents=ready, staffed_agents=staffed, busy_agents=busy,
                           ringing_call_ages=ringing, waiting_calls=waiting,
                           calls_up=len(self._calls), cps_tokens=self._tokens)

    # -- reporting -------------------------------------------------------------------

    def calls_by_phase(self) -> dict[CallPhase, int]:
        out = dict.fromkeys(CallPhase, 0)
        for call in self._calls.values():
            out[call.phase] += 1
        return out

    def lead_of(self, call_id: str) -> str | None:
        call = self._calls.get(call_id)
        return call.lead_id if call else None

    def stats(self, now: float) -> CampaignStats:
        return build_stats(self, now)

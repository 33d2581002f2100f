"""Live figures a supervisor watches, as one immutable snapshot.

Dials, answers and abandons are over the campaign's legal window (24 h or 30 days, from
the rolling counters that survive restarts via Redis). Occupancy and talk time per
agent-hour are over the agent time this engine has observed (since it started), because
agent state comes from the live event stream, not from storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dialer.agents import AgentState
from dialer.window import Counter

if TYPE_CHECKING:
    from dialer.engine import CampaignEngine


@dataclass(frozen=True)
class CampaignStats:
    tenant: str
    campaign_id: str
    mode: str
    paused: bool
    at: float
    abandon_target: float
    abandon_window: str
    dials: int
    answers: int  # answered by a person
    answer_rate: float
    connected: int
    abandoned: int
    abandon_rate: float
    calls_ringing: int
    calls_waiting: int
    calls_connected: int
    agents_ready: int
    agents_ringing: int
    agents_talking: int
    agents_wrap_up: int
    agents_paused: int
    agents_offline: int
    occupancy: float  # (ringing + talking + wrap-up) / staffed agent time
    talk_min_per_agent_hour: float
    staffed_agent_hours: float
    recent_abandon_rate: float
    estimated_answer_rate: float
    pacing_limited_by: str


def build_stats(engine: CampaignEngine, now: float) -> CampaignStats:
    from dialer.engine import CallPhase  # cycle: engine builds stats

    c = engine.campaign
    w = engine.window
    dials = w.total(Counter.DIALS, now)
    live = w.total(Counter.LIVE, now)
    abandoned = w.total(Counter.ABANDONED, now)
    counts = engine.board.counts()
    secs = engine.board.seconds_by_state(now)
    handling = secs[AgentState.RINGING] + secs[AgentState.TALKING] + secs[AgentState.WRAP_UP]
    staffed = handling + secs[AgentState.READY]
    phases = engine.calls_by_phase()
    return CampaignStats(
        tenant=c.tenant,
        campaign_id=c.campaign_id,
        mode=c.mode.value,
        paused=c.paused,
        at=now,
        abandon_target=c.abandon_target,
        abandon_window=c.abandon_window.value,
        dials=dials,
        answers=live,
        answer_rate=live / dials if dials else 0.0,
        connected=w.total(Counter.CONNECTED, now),
        abandoned=abandoned,
        abandon_rate=abandoned / live if live else 0.0,
        calls_ringing=phases[CallPhase.RINGING],
        calls_waiting=phases[CallPhase.WAITING],
        calls_connected=phases[CallPhase.CONNECTED],
        agents_ready=counts.ready,
        agents_ringing=counts.ringing,
        agents_talking=counts.talking,
        agents_wrap_up=counts.wrap_up,
        agents_paused=counts.paused,
        agents_offline=counts.offline,
        occupancy=handling / staffed if staffed else 0.0,
        talk_min_per_agent_hour=(secs[AgentState.TALKING] / 60.0) / (staffed / 3600.0)
        if staffed else 0.0,
        staffed_agent_hours=staffed / 3600.0,
        recent_abandon_rate=engine.pacer.recent_abandon_rate,
        estimated_answer_rate=engine.estimates.answer_rate,
        pacing_limited_by=engine.last_decision.limited_by,
    )

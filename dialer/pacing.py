r"""How many calls to start now: progressive and predictive pacing.

Pure code: inputs are a snapshot of agents and calls plus the learnt estimates; no I/O,
no wall clock. The runner and the simulator call the same functions.

Progressive
-----------
    place = R - C - Q        (one call per ready agent, never more)

Predictive
----------
At each tick, with

    R     ready agents                  Q    answered calls waiting for an agent
    a_j   age of ringing call j         p    measured live-answer rate
    h     horizon = mean time from dial to live answer + connect_within_s
    f_i   P(busy agent i is ready within h):
            wrap-up, r_i seconds left:  f_i = 1 if r_i <= h else 0
            talking for e_i seconds:    f_i = P(T <= e_i + h - W | T > e_i)
                                        (T = empirical talk time, W = wrap-up time)
    q_j   P(ringing call j is answered by a person | still ringing at a_j)
            = p S_L(a_j) / (p S_L(a_j) + (1 - p) S_N(a_j))
            (S_L, S_N = empirical survival of time-to-answer, time-to-fail)

supply and demand over the horizon, for n new calls, are

    S    = R + sum_i f_i                    Var S = sum_i f_i (1 - f_i)
    D(n) = Q + sum_j q_j + n p              Var D = sum_j q_j (1 - q_j) + n p (1 - p)

and the expected overflow (answered calls finding no agent), normal approximation,

    mu = D(n) - S,  sigma^2 = Var D + Var S
    O(n) = sigma phi(mu / sigma) + mu Phi(mu / sigma)

We place the largest n with

    O(n) <= alpha D(n),   alpha = s exp(u)

where s is the abandon setpoint and exp(u) a feedback gain correcting the model
(answers and frees are spread over the horizon, not simultaneous, so the raw model is
pessimistic; distributions drift). The correction is PI-style on the measured abandon
rate, updated per live answer x_k (1 = abandoned, 0 = connected in time):

    I <- I + k_i (s - x_k) / s               (integral; converges to E[x] = s)
    u  = I + k_p clamp((s - r_recent) / s, -1, 1)
    s  = margin(N) * target * clamp(1 - (r_window - target) / target, 1/2, 1)
    margin(N) = clamp(1 - H / (target N), 0.85, 0.97)

r_recent is the abandon rate over about the last 200 live answers, r_window the rate
over the campaign's legal window (24 h or 30 days) and N its live answers. The integral
holds the abandon *count* within a few calls of s N, so the headroom kept below the
target is a number of abandons, H = 6, not a fraction: 15 % of the budget while the
window is young (N < 1,300 at 3 %), 8 % at 2,500 live answers, 3 % once it holds a day's
calls. I only integrates upward while the model, not a cap, set the number of calls
(anti-windup). Finally n is capped:

    C + Q + n <= max_ratio * staffed agents      (dial level)
    calls up + n <= max_channels                 (trunk share)
    n <= CPS tokens                              (token bucket, max_cps per second)

and never below what progressive would place (R - C - Q), which cannot cause abandons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dialer.agents import AgentState
from dialer.campaign import Campaign
from dialer.estimates import CallEstimates


@dataclass(frozen=True)
class BusyAgent:
    state: AgentState  # RINGING, TALKING or WRAP_UP
    elapsed_s: float  # time in the current state
    wrap_up_s: float  # wrap-up that follows the call
    wrap_remaining_s: float = 0.0


@dataclass(frozen=True)
class PacingInput:
    ready_agents: int
    staffed_agents: int
    busy_agents: Sequence[BusyAgent]
    ringing_call_ages: Sequence[float]
    waiting_calls: int  # answered by a person, not yet with an agent
    calls_up: int  # every call of the campaign holding a channel
    cps_tokens: float


@dataclass(frozen=True)
class PacingDecision:
    place: int
    limited_by: str  # model | progressive_floor | max_ratio | channels | cps | paused | mode
    expected_free: float = 0.0
    expected_demand: float = 0.0
    alpha: float = 0.0

    @property
    def model_bound(self) -> bool:
        return self.limited_by == "model"


def caps(inp: PacingInput, campaign: Campaign) -> tuple[int, str]:
    """The most calls any mode may start now, and which limit binds."""
    in_flight = len(inp.ringing_call_ages) + inp.waiting_calls
    limits = (
        (math.floor(campaign.max_ratio * inp.staffed_agents + 1e-9) - in_flight, "max_ratio"),
        (campaign.max_channels - inp.calls_up, "channels"),
        (math.floor(inp.cps_tokens + 1e-9), "cps"),
    )
    n, why = min(limits, key=lambda x: x[0])
    return max(0, n), why


def progressive(inp: PacingInput, campaign: Campaign) -> PacingDecision:
    want = inp.ready_agents - len(inp.ringing_call_ages) - inp.waiting_calls
    cap, why = caps(inp, campaign)
    if want <= cap:
        return PacingDecision(max(0, want), "model", expected_free=inp.ready_agents)
    return PacingDecision(cap, why, expected_free=inp.ready_agents)


def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def expected_overflow(mu: float, var: float) -> float:
    """E[(X)+] for X ~ Normal(mu, var)."""
    if var <= 1e-12:
        return max(0.0, mu)
    sigma = math.sqrt(var)
    z = mu / sigma
    return sigma * _phi(z) + mu * _cdf(z)


@dataclass(frozen=True)
class PredictiveTuning:
    # Headroom below the target, in abandoned calls (see margin(N) above).
    headroom_abandons: float = 6.0
    margin_min: float = 0.85
    margin_max: float = 0.97
    k_i: float = 0.005
    k_p: float = 0.5
    recent_answers: int = 200
    gain_min: float = 0.02
    gain_max: float = 50.0


class PredictivePacer:
    """The predictive model plus its abandon-rate feedback (the only state it keeps)."""

    def __init__(self, tuning: PredictiveTuning | None = None) -> None:
        self.tuning = tuning or PredictiveTuning()
        self._integral = 0.0
        self._recent_live = 0.0
        self._recent_abandoned = 0.0
        self._last_model_bound = True

    @property
    def recent_abandon_rate(self) -> float:
        return self._recent_abandoned / self._recent_live if self._recent_live > 0 else 0.0

    def setpoint(self, target: float, window_rate: float, window_live: int = 0) -> float:
        if target <= 0:
            return 0.0
        t = self.tuning
        room = 1.0 - t.headroom_abandons / (target * window_live) if window_live > 0 else 0.0
        margin = min(t.margin_max, max(t.margin_min, room))
        excess = (window_rate - target) / target
        return margin * target * min(1.0, max(0.5, 1.0 - excess))

    def gain(self, setpoint: float) -> float:
        t = self.tuning
        u = self._integral
        if setpoint > 0 and self._recent_live >= 20:
            e = (setpoint - self.recent_abandon_rate) / setpoint
            u += t.k_p * max(-1.0, min(1.0, e))
        return max(t.gain_min, min(t.gain_max, math.exp(u)))

    def observe_live_answer(self, abandoned: bool, setpoint: float) -> None:
        """Feed one live answer: connected in time (False) or abandoned (True)."""
        t = self.tuning
        decay = 1.0 - 1.0 / t.recent_answers
        self._recent_live = self._recent_live * decay + 1.0
        self._recent_abandoned = self._recent_abandoned * decay + (1.0 if abandoned else 0.0)
        if setpoint <= 0:
            return
        step = t.k_i * ((setpoint - (1.0 if abandoned else 0.0)) / setpoint)
        if step > 0 and not self._last_model_bound:
            return  # anti-windup: a cap, not the model, kept abandons low
        lo, hi = math.log(t.gain_min), math.log(t.gain_max)
        self._integral = max(lo, min(hi, self._integral + step))

    def decide(self, inp: PacingInput, est: CallEstimates, campaign: Campaign,
               window_rate: float, window_live: int = 0) -> PacingDecision:
        s = self.setpoint(campaign.abandon_target, window_rate, window_live)
        alpha = s * self.gain(s)
        horizon = est.mean_answer_delay + campaign.connect_within_s

        supply = float(inp.ready_agents)
        var_supply = 0.0
        for a in inp.busy_agents:
            if a.state is AgentState.WRAP_UP:
                f = 1.0 if a.wrap_remaining_s <= horizon else 0.0
            else:
                elapsed = a.elapsed_s if a.state is AgentState.TALKING else 0.0
                f = est.p_talk_ends_within(elapsed, horizon - a.wrap_up_s)
            supply += f
            var_supply += f * (1.0 - f)

        demand = float(inp.waiting_calls)
        var_demand = 0.0
        for age in inp.ringing_call_ages:
            q = est.live_probability(age)
            demand += q
            var_demand += q * (1.0 - q)

        p = est.answer_rate
        cap, why = caps(inp, campaign)
        n = 0
        while n < cap:
            d = demand + (n + 1) * p
            var = var_demand + (n + 1) * p * (1.0 - p) + var_supply
            if expected_overflow(d - supply, var) > alpha * d:
                break
            n += 1
        bound = "model" if n < cap else why
        # Never fewer calls than progressive would make: one call per ready agent with no
        # call in flight cannot leave an answered call without an agent. (The normal
        # approximation is poor for a handful of agents and would otherwise stall.)
        floor = min(cap, inp.ready_agents - len(inp.ringing_call_ages) - inp.waiting_calls)
        if floor > n:
            n, bound = floor, "progressive_floor"
        self._last_model_bound = bound == "model"
        return PacingDecision(n, bound, expected_free=supply, expected_demand=demand + n * p,
                              alpha=alpha)

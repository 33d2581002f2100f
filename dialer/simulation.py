"""Discrete-event simulation of an outbound call centre, for benchmarks and tests.

Not used by the running dialer. It plays Asterisk's part (dialled numbers that ring,
answer, fail; a queue that hands answered calls to free agents, with a wrap-up time and
a connect timeout) and drives the real `CampaignEngine` with the same queue events
Asterisk would send (QueueMemberAdded/Status, AgentCalled, AgentConnect, AgentComplete),
on simulated time. Hours of calling run in seconds.

Reported figures come from the simulated world's own ground truth (what agents really
did, which answered calls really waited too long), not from the engine's view of it.

Randomness: independent streams for dial outcomes and for talk times, each seeded from
the run seed, so two modes run with one seed see the same sequence of callees
(common random numbers) and differences come from pacing, not luck.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from dialer.agents import QueueEvent
from dialer.campaign import Campaign
from dialer.engine import CampaignEngine
from dialer.leads import Outcome


@dataclass(frozen=True)
class Dist:
    """A duration distribution: constant, uniform(a, b), exponential(mean), lognormal."""

    kind: str
    a: float
    b: float = 0.0

    @staticmethod
    def constant(x: float) -> Dist:
        return Dist("constant", x)

    @staticmethod
    def uniform(lo: float, hi: float) -> Dist:
        return Dist("uniform", lo, hi)

    @staticmethod
    def exponential(mean: float) -> Dist:
        return Dist("exponential", mean)

    @staticmethod
    def lognormal(mean: float, sd: float) -> Dist:
        return Dist("lognormal", mean, sd)

    def sample(self, rng: random.Random) -> float:
        if self.kind == "constant":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.a)
        sigma2 = math.log(1.0 + (self.b / self.a) ** 2)
        return rng.lognormvariate(math.log(self.a) - sigma2 / 2.0, math.sqrt(sigma2))

    def describe(self) -> str:
        if self.kind == "constant":
            return f"{self.a:g} s"
        if self.kind == "uniform":
            return f"uniform {self.a:g}-{self.b:g} s"
        if self.kind == "exponential":
            return f"exponential mean {self.a:g} s"
        return f"lognormal mean {self.a:g} s sd {self.b:g} s"


POST_DIAL_DELAY = Dist.uniform(2.0, 5.0)
RING_TO_ANSWER = Dist.lognormal(10.0, 6.0)
BUSY_AFTER = Dist.uniform(0.5, 1.5)
FAILED_AFTER = Dist.uniform(0.5, 3.0)
TALK = Dist.lognormal(90.0, 70.0)


@dataclass(frozen=True)
class CallCentre:
    agents: int = 20
    answer_rate: float = 0.30  # dials answered by a person
    # How the other dials end, as shares of the non-live part.
    no_answer_share: float = 0.57
    machine_share: float = 0.21
    busy_share: float = 0.15  # the rest fail (invalid number, congestion)
    post_dial_delay: Dist = POST_DIAL_DELAY
    ring_to_answer: Dist = RING_TO_ANSWER  # after post-dial delay
    busy_after: Dist = BUSY_AFTER  # after post-dial delay
    failed_after: Dist = FAILED_AFTER
    amd_s: float = 3.5  # answering-machine detection, then hang-up
    # AMD runs on every answered call: a person is passed on once AMD hears the end of
    # the greeting. The 2-second abandon clock starts then.
    amd_live_s: float = 2.0
    agent_connect_s: float = 0.5  # agent phone auto-answers
    talk: Dist = TALK
    wrap_up_s: float = 10.0  # queue wrapuptime
    apology_s: float = 5.0


@dataclass(frozen=True)
class SupervisorChange:
    at_s: float
    changes: tuple[tuple[str, Any], ...]

    @staticmethod
    def of(at_s: float, **changes: Any) -> SupervisorChange:
        return SupervisorChange(at_s, tuple(changes.items()))


@dataclass(frozen=True)
class Period:
    start_s: float
    end_s: float
    live_answers: int
    abandoned: int

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.live_answers if self.live_answers else 0.0


@dataclass(frozen=True)
class SimResult:
    mode: str
    answer_rate: float
    duration_s: float
    dials: int
    live_answers: int
    abandoned: int
    connected: int
    occupancy: float
    talk_min_per_agent_hour: float
    mean_wait_s: float  # agent idle time per connected call
    periods: tuple[Period, ...] = ()
    engine_abandon_rate: float = 0.0
    engine_occupancy: float = 0.0

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.live_answers if self.live_answers else 0.0

    def figures(self) -> dict[str, float]:
        return {
            "occupancy": round(self.occupancy, 4),
            "abandon_rate": round(self.abandon_rate, 4),
            "talk_min_per_agent_hour": round(self.talk_min_per_agent_hour, 2),
        }


class _A(Enum):
    FREE = 0
    RINGING = 1
    TALKING = 2
    WRAP = 3


@dataclass
class _SimAgent:
    interface: str
    state: _A = _A.FREE
    since: float = 0.0
    call: str = ""


@dataclass
class _World:
    """Ground truth of the simulated centre."""

    agent_seconds: dict[_A, float] = field(default_factory=lambda: dict.fromkeys(_A, 0.0))
    dials: int = 0
    live: int = 0
    abandoned: int = 0
    connected: int = 0
    live_times: list[float] = field(default_factory=list)
    abandon_times: list[float] = field(default_factory=list)


def simulate(campaign: Campaign, centre: CallCentre, *, duration_s: float, seed: int,
             tick_s: float = 1.0, changes: Sequence[SupervisorChange] = (),
             period_edges: Sequence[float] = ()) -> SimResult:
    """Run `campaign` against the simulated centre for `duration_s` of simulated time."""
    return _Simulation(campaign, centre, seed, tick_s, changes).run(duration_s, period_edges)


class _Simulation:
    def __init__(self, campaign: Campaign, centre: CallCentre, seed: int, tick_s: float,
                 changes: Sequence[SupervisorChange]) -> None:
        self.campaign = campaign
        self.centre = centre
        self.tick_s = tick_s
        self.changes = sorted(changes, key=lambda c: c.at_s)
        self.call_rng = random.Random(f"{seed}:calls")
        self.talk_rng = random.Random(f"{seed}:talk")
        self.engine = CampaignEngine(campaign, 0.0)
        self.queue_name = campaign.agent_queue
        self.heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self.seq = itertools.count()
        self.now = 0.0
        self.agents = [_SimAgent(f"PJSIP/agent{i:02d}") for i in range(centre.agents)]
        self.waiting: deque[tuple[str, float]] = deque()  # (call, answered_at)
        self.in_queue: set[str] = set()
        self.answered_at: dict[str, float] = {}
        self.truth = _World()
        self.ids = itertools.count(1)

    # -- plumbing ------------------------------------------------------------------

    def at(self, t: float, fn: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self.heap, (t, next(self.seq), fn, args))

    def emit(self, name: str, **fields: object) -> None:
        self.engine.on_queue_event(QueueEvent.of(name, Queue=self.queue_name, **fields),
                                   self.now)

    def set_agent(self, agent: _SimAgent, state: _A, call: str = "") -> None:
        self.truth.agent_seconds[agent.state] += self.now - agent.since
        agent.state = state
        agent.since = self.now
        agent.call = call

    def run(self, duration_s: float, period_edges: Sequence[float]) -> SimResult:
        for agent in self.agents:
            self.emit("QueueMemberAdded", Interface=agent.interface, MemberName=agent.interface,
                      Status=1, Paused=0, InCall=0, Wrapuptime=self.centre.wrap_up_s)
        self.at(0.0, self.tick)
        pending_changes = deque(self.changes)
        while self.heap:
            t, _, fn, args = heapq.heappop(self.heap)
            if t > duration_s:
                break
            self.now = t
            while pending_changes and pending_changes[0].at_s <= t:
                change = pending_changes.popleft()
                self.engine.update_campaign(replace(self.engine.campaign, **dict(change.changes)))
            fn(*args)
        self.now = duration_s
        for agent in self.agents:
            self.set_agent(agent, agent.state, agent.call)
        return self.result(duration_s, period_edges)

    # -- pacing ----------------------------------------------------------------------

    def tick(self) -> None:
        plan = self.engine.tick(self.now)
        for call in plan.abandon:
            self.drop(call)  # the engine's backstop; normally the queue timeout came first
        for _ in range(plan.place):
            self.dial()
        self.at(self.now + self.tick_s, self.tick)

    def dial(self) -> None:
        c = self.centre
        rng = self.call_rng
        call = f"sim-{next(self.ids)}"
        self.truth.dials += 1
        self.engine.call_placed(call, call, self.now)
        pdd = c.post_dial_delay.sample(rng)
        timeout = float(self.campaign.dial_timeout_s)
        u = rng.random()
        ring = min(c.ring_to_answer.sample(rng), timeout - pdd - 1.0)
        if u < c.answer_rate:
            self.at(self.now + pdd + ring + c.amd_live_s, self.answered, call)
            return
        v = (u - c.answer_rate) / (1.0 - c.answer_rate)
        if v < c.no_answer_share:
            self.at(self.now + timeout, self.failed, call, Outcome.NO_ANSWER)
        elif v < c.no_answer_share + c.machine_share:
            self.at(self.now + pdd + ring + c.amd_s, self.failed, call, Outcome.MACHINE)
        elif v < c.no_answer_share + c.machine_share + c.busy_share:
            self.at(self.now + pdd + c.busy_after.sample(rng), self.failed, call, Outcome.BUSY)
        else:
            self.at(self.now + c.failed_after.sample(rng), self.failed, call, Outcome.FAILED)

    # -- the callee and the queue -----------------------------------------------------

    def failed(self, call: str, outcome: Outcome) -> None:
        self.engine.call_failed(call, outcome, self.now)

    def answered(self, call: str) -> None:
        self.truth.live += 1
        self.truth.live_times.append(self.now)
        self.answered_at[call] = self.now
        self.engine.call_answered(call, self.now)
        agent = self.free_agent()
        if agent is not None:
            self.offer(agent, call)
            return
        self.waiting.append((call, self.now))
        self.in_queue.add(call)
        self.at(self.now + self.campaign.connect_within_s, self.queue_timeout, call)

    def free_agent(self) -> _SimAgent | None:
        free = [a for a in self.agents if a.state is _A.FREE]
        return min(free, key=lambda a: a.since) if free else None  # longest idle first

    def offer(self, agent: _SimAgent, call: str) -> None:
        self.set_agent(agent, _A.RINGING, call)
        self.emit("AgentCalled", Interface=agent.interface, MemberName=agent.interface,
                  Linkedid=call, Uniqueid=call)
        self.emit("QueueMemberStatus", Interface=agent.interface, Status=6, Paused=0,
                  InCall=0)
        self.at(self.now + self.centre.agent_connect_s, self.connect, agent, call)

    def connect(self, agent: _SimAgent, call: str) -> None:
        self.set_agent(agent, _A.TALKING, call)
        if self.now - self.answered_at[call] <= self.campaign.connect_within_s + 1e-9:
            self.truth.connected += 1
        else:
            self.abandon_truth()
        self.emit("AgentConnect", Interface=agent.interface, MemberName=agent.interface,
                  Linkedid=call, Uniqueid=call, HoldTime=0, RingTime=1)
        self.emit("QueueMemberStatus", Interface=agent.interface, Status=2, Paused=0,
                  InCall=1)
        talk = self.centre.talk.sample(self.talk_rng)
        self.at(self.now + talk, self.hang_up, agent, call)

    def hang_up(self, agent: _SimAgent, call: str) -> None:
        self.emit("QueueMemberStatus", Interface=agent.interface, Status=1, Paused=0,
                  InCall=0)
        self.emit("AgentComplete", Interface=agent.interface, MemberName=agent.interface,
                  Linkedid=call, Uniqueid=call, TalkTime=round(self.now - agent.since),
                  Reason="caller")
        self.engine.call_ended(call, self.now)
        self.answered_at.pop(call, None)
        if self.centre.wrap_up_s > 0:
            self.set_agent(agent, _A.WRAP)
            self.at(self.now + self.centre.wrap_up_s, self.wrap_done, agent)
        else:
            self.wrap_done(agent)

    def wrap_done(self, agent: _SimAgent) -> None:
        self.set_agent(agent, _A.FREE)
        latest_offer = self.campaign.connect_within_s - self.centre.agent_connect_s
        while self.waiting:
            call, answered = self.waiting.popleft()
            if call not in self.in_queue:
                continue
            if self.now - answered <= latest_offer + 1e-9:
                self.in_queue.discard(call)
                self.offer(agent, call)
                return
            self.drop(call)

    def queue_timeout(self, call: str) -> None:
        if call in self.in_queue:
            self.drop(call)

    def drop(self, call: str) -> None:
        """Queue timeout: apology prompt, then hang-up."""
        if call not in self.answered_at or call not in self.in_queue:
            return
        self.in_queue.discard(call)
        self.abandon_truth()
        self.answered_at.pop(call, None)
        self.at(self.now + self.centre.apology_s, self.end_abandoned, call)

    def abandon_truth(self) -> None:
        self.truth.abandoned += 1
        self.truth.abandon_times.append(self.now)

    def end_abandoned(self, call: str) -> None:
        self.engine.call_ended(call, self.now)

    # -- results ---------------------------------------------------------------------

    def result(self, duration_s: float, period_edges: Sequence[float]) -> SimResult:
        t = self.truth
        secs = t.agent_seconds
        staffed = sum(secs.values())
        handling = secs[_A.RINGING] + secs[_A.TALKING] + secs[_A.WRAP]
        edges = [0.0, *sorted(period_edges), duration_s]
        periods = tuple(
            Period(lo, hi,
                   sum(1 for x in t.live_times if lo <= x < hi),
                   sum(1 for x in t.abandon_times if lo <= x < hi))
            for lo, hi in itertools.pairwise(edges))
        stats = self.engine.stats(duration_s)
        return SimResult(
            mode=self.campaign.mode.value,
            answer_rate=self.centre.answer_rate,
            duration_s=duration_s,
            dials=t.dials,
            live_answers=t.live,
            abandoned=t.abandoned,
            connected=t.connected,
            occupancy=handling / staffed if staffed else 0.0,
            talk_min_per_agent_hour=(secs[_A.TALKING] / 60.0) / (staffed / 3600.0)
            if staffed else 0.0,
            mean_wait_s=secs[_A.FREE] / t.connected if t.connected else 0.0,
            periods=periods,
            engine_abandon_rate=stats.abandon_rate,
            engine_occupancy=stats.occupancy,
        )

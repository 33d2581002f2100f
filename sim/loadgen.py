"""Load generator: calls into a gateway context at a rate or at a fixed concurrency.

Repeatable for a given seed: tenants, destinations and far-end behaviour are drawn from
the simulator's seeded RNG and this generator's own. Counts what the gateway decided.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

import structlog

from sim.dialplan import GatewayCall
from sim.simulator import AsteriskSim

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Destination:
    prefix: str
    weight: float = 1.0
    digits: int = 8  # random digits appended to the prefix


@dataclass(frozen=True)
class LoadProfile:
    """`rate` calls per simulated second (Poisson arrivals) or `concurrent` calls kept up."""

    rate: float = 0.0
    concurrent: int = 0
    total_calls: int | None = None
    tenants: tuple[tuple[str, float], ...] = (("default", 1.0),)
    destinations: tuple[Destination, ...] = (Destination("49151"),)
    context: str = "callgate-out"
    caller_numbers: tuple[str, ...] = ("5551234",)
    seed: int | None = None
    hangup_after: float | None = None  # caller hangs up after this many sim seconds


@dataclass
class LoadStats:
    attempted: int = 0
    allowed: int = 0
    denied: int = 0
    no_decision: int = 0
    completed: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    denied_by_reason: Counter[str] = field(default_factory=Counter)
    allowed_by_reason: Counter[str] = field(default_factory=Counter)
    no_decision_by_agistatus: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    by_tenant: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "attempted": self.attempted,
            "allowed": self.allowed,
            "denied": self.denied,
            "no_decision": self.no_decision,
            "completed": self.completed,
            "max_in_flight": self.max_in_flight,
            "denied_by_reason": dict(self.denied_by_reason),
            "allowed_by_reason": dict(self.allowed_by_reason),
            "no_decision_by_agistatus": dict(self.no_decision_by_agistatus),
            "outcomes": dict(self.outcomes),
            "by_tenant": dict(self.by_tenant),
        }


class LoadGenerator:
    def __init__(self, sim: AsteriskSim, profile: LoadProfile) -> None:
        if profile.rate <= 0 and profile.concurrent <= 0:
            raise ValueError("set rate > 0 or concurrent > 0")
        self.sim = sim
        self.profile = profile
        self.rng = random.Random(profile.seed)
        self.stats = LoadStats()
        self._task: asyncio.Task[None] | None = None
        self._calls: set[GatewayCall] = set()
        self._watchers: set[asyncio.Future[None]] = set()
        self._slot = asyncio.Event()
        self.finished = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def run_to_completion(self) -> LoadStats:
        """Start (if needed), wait until total_calls have all ended."""
        if self.profile.total_calls is None:
            raise ValueError("run_to_completion needs total_calls")
        if self._task is None:
            self.start()
        await self.finished.wait()
        return self.stats

    def _pick_tenant(self) -> str:
        names = [t for t, _ in self.profile.tenants]
        weights = [w for _, w in self.profile.tenants]
        return self.rng.choices(names, weights)[0]

    def _pick_number(self) -> str:
        dests = self.profile.destinations
        d = self.rng.choices(dests, [x.weight for x in dests])[0]
        return d.prefix + "".join(str(self.rng.randrange(10)) for _ in range(d.digits))

    def _launch(self) -> None:
        p = self.profile
        tenant = self._pick_tenant()
        number = self._pick_number()
        caller = self.rng.choice(p.caller_numbers)
        self.stats.attempted += 1
        self.stats.by_tenant[tenant] += 1
        call = self.sim.place_call(
            number,
            context=p.context,
            caller_num=caller,
            variables={"TENANT": tenant},
            hangup_after=p.hangup_after,
        )
        self._calls.add(call)
        self.stats.in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        watcher = asyncio.ensure_future(self._watch(call))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, call: GatewayCall) -> None:
        await call.ended.wait()
        self._calls.discard(call)
        s = self.stats
        s.in_flight -= 1
        s.completed += 1
        v = call.g2.variables
        result = v.get("CALLGATE_RESULT") or ("ALLOW" if v.get("GW_AUTH") == "OK" else "")
        reason = v.get("CALLGATE_REASON", "") or "unknown"
        if result == "ALLOW":
            s.allowed += 1
            s.allowed_by_reason[reason] += 1
        elif result == "DENY" or v.get("GW_AUTH"):
            s.denied += 1
            s.denied_by_reason[reason] += 1
        else:  # the gateway never answered (unreachable, hung up during AGI...)
            s.no_decision += 1
            s.no_decision_by_agistatus[v.get("AGISTATUS", "NONE")] += 1
        s.outcomes[call.outcome or "ended"] += 1
        self._slot.set()
        total = self.profile.total_calls
        if total is not None and s.completed >= total:
            self.finished.set()

    async def _run(self) -> None:
        p = self.profile
        clock = self.sim.clock
        total = p.total_calls
        while total is None or self.stats.attempted < total:
            if p.concurrent > 0:
                while self.stats.in_flight >= p.concurrent:
                    self._slot.clear()
                    await self._slot.wait()
                self._launch()
                await asyncio.sleep(0)
            else:
                await clock.sleep(self.rng.expovariate(p.rate))
                self._launch()

"""What the dialled far end does: a tiny dialplan for the callee's `;2` channel.

`PatternFarEnd` is the recordings' `sim-callee` context (100 talks 5 s, 1XX answers,
2XX rings, 3XX busy, 4XX congestion, 5XX echo). `RandomFarEnd` draws ring time, answer,
busy and talk time from configurable distributions for demos, load and benchmarks.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Protocol

Step = tuple[str, str]  # (application, data)


@dataclass(frozen=True)
class Dist:
    """A distribution of seconds: fixed, uniform, exponential or lognormal (by mean)."""

    kind: str = "fixed"
    a: float = 0.0
    b: float = 0.0

    @staticmethod
    def fixed(v: float) -> Dist:
        return Dist("fixed", v)

    @staticmethod
    def uniform(lo: float, hi: float) -> Dist:
        return Dist("uniform", lo, hi)

    @staticmethod
    def exponential(mean: float) -> Dist:
        return Dist("exponential", mean)

    @staticmethod
    def lognormal(mean: float, sigma: float = 0.5) -> Dist:
        return Dist("lognormal", mean, sigma)

    @staticmethod
    def parse(text: str) -> Dist:
        """`5`, `uniform:2:8`, `exp:60`, `lognormal:90:0.6`."""
        parts = text.strip().split(":")
        try:
            if len(parts) == 1:
                return Dist.fixed(float(parts[0]))
            kind = parts[0].lower()
            nums = [float(p) for p in parts[1:]]
        except ValueError as exc:
            raise ValueError(f"bad distribution {text!r}: {exc}") from exc
        if kind in ("fixed", "const") and len(nums) == 1:
            return Dist.fixed(nums[0])
        if kind in ("uniform", "u") and len(nums) == 2:
            return Dist.uniform(nums[0], nums[1])
        if kind in ("exp", "exponential") and len(nums) == 1:
            return Dist.exponential(nums[0])
        if kind in ("lognormal", "lognorm") and len(nums) in (1, 2):
            return Dist.lognormal(nums[0], nums[1] if len(nums) == 2 else 0.5)
        raise ValueError(f"bad distribution {text!r}")

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            v = self.a
        elif self.kind == "uniform":
            v = rng.uniform(self.a, self.b)
        elif self.kind == "exponential":
            v = rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        elif self.kind == "lognormal":
            sigma = self.b
            mu = math.log(max(self.a, 1e-9)) - sigma * sigma / 2
            v = rng.lognormvariate(mu, sigma)
        else:
            raise ValueError(f"unknown distribution {self.kind}")
        return max(0.0, v)


class FarEnd(Protocol):
    def plan(self, exten: str, rng: random.Random) -> tuple[Step, ...]: ...


def _secs(v: float) -> str:
    return f"{round(v, 3):g}"


@dataclass(frozen=True)
class PatternFarEnd:
    """The recordings' sim-callee context, decided by the dialled number's first digit."""

    def plan(self, exten: str, rng: random.Random) -> tuple[Step, ...]:
        record = (
            "ExecIf",
            "$RECORD?MixMonitor(/opt/asterisk/var/spool/asterisk/monitor/$GW_RECORD-callee.wav)",
        )
        if exten == "100":
            return (("Answer", ""), ("Wait", "5"), ("Hangup", "16"))
        head = exten[:1]
        if head == "1" and len(exten) == 3:
            return (("Answer", ""), record, ("Wait", "600"), ("Hangup", ""))
        if head == "2" and len(exten) == 3:
            return (("Ringing", ""), ("Wait", "600"), ("Hangup", ""))
        if head == "3" and len(exten) == 3:
            return (("Busy", "5"),)
        if head == "4" and len(exten) == 3:
            return (("Congestion", "5"),)
        if head == "5" and len(exten) == 3:
            return (("Answer", ""), ("Echo", ""))
        # No such extension in sim-callee: Asterisk fails the Local channel (CHANUNAVAIL).
        return (("Congestion", "0"),)


@dataclass(frozen=True)
class RandomFarEnd:
    """A population of far ends: each call draws its outcome and timings."""

    ring: Dist = Dist("uniform", 1.0, 6.0)
    talk: Dist = Dist("exponential", 60.0)
    answer_probability: float = 0.8
    busy_rate: float = 0.1
    congestion_rate: float = 0.0
    no_answer_ring: float = 600.0

    def plan(self, exten: str, rng: random.Random) -> tuple[Step, ...]:
        roll = rng.random()
        if roll < self.busy_rate:
            return (("Busy", "5"),)
        if roll < self.busy_rate + self.congestion_rate:
            return (("Congestion", "5"),)
        ring = self.ring.sample(rng)
        if rng.random() >= self.answer_probability:
            return (("Ringing", ""), ("Wait", _secs(self.no_answer_ring)), ("Hangup", ""))
        talk = max(0.1, self.talk.sample(rng))
        if ring <= 0:
            return (("Answer", ""), ("Wait", _secs(talk)), ("Hangup", "16"))
        return (
            ("Ringing", ""),
            ("Wait", _secs(ring)),
            ("Answer", ""),
            ("Wait", _secs(talk)),
            ("Hangup", "16"),
        )


@dataclass(frozen=True)
class PrefixFarEnd:
    """Pick a far-end model by the longest matching number prefix ("" = default)."""

    routes: tuple[tuple[str, FarEnd], ...]

    def plan(self, exten: str, rng: random.Random) -> tuple[Step, ...]:
        best: FarEnd | None = None
        best_len = -1
        for prefix, model in self.routes:
            if exten.startswith(prefix) and len(prefix) > best_len:
                best, best_len = model, len(prefix)
        if best is None:
            return (("Congestion", "0"),)
        return best.plan(exten, rng)

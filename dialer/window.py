"""Rolling counts over the campaign's abandon-rate window (24 h or 30 days).

Counts are kept in time buckets so the window can roll without keeping every call:
5-minute buckets for 24 h, 1-hour buckets for 30 days (288 / 720 buckets). The rate
over the window is then exact to within one bucket at its trailing edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from dialer.campaign import AbandonWindow


class Counter(StrEnum):
    DIALS = "d"
    LIVE = "a"  # answered by a person (the abandon rate's denominator)
    ABANDONED = "x"
    CONNECTED = "c"
    TALK_S = "t"


def bucket_seconds(window: AbandonWindow) -> int:
    return 300 if window is AbandonWindow.ROLLING_24H else 3600


@dataclass(frozen=True)
class CounterDelta:
    counter: Counter
    bucket: int  # bucket start, epoch seconds
    amount: int

    @property
    def field(self) -> str:
        return f"{self.counter.value}:{self.bucket}"


class RollingCounts:
    def __init__(self, window: AbandonWindow) -> None:
        self.window = window
        self._bucket_s = bucket_seconds(window)
        self._counts: dict[tuple[Counter, int], int] = {}
        self._totals: dict[Counter, int] = dict.fromkeys(Counter, 0)
        self._pending: list[CounterDelta] = []
        self._expired: list[str] = []
        self._oldest_kept = 0

    def add(self, counter: Counter, now: float, amount: int = 1) -> None:
        bucket = int(now) - int(now) % self._bucket_s
        key = (counter, bucket)
        self._counts[key] = self._counts.get(key, 0) + amount
        self._totals[counter] += amount
        self._pending.append(CounterDelta(counter, bucket, amount))

    def total(self, counter: Counter, now: float) -> int:
        self._expire(now)
        return self._totals[counter]

    def rate(self, numerator: Counter, denominator: Counter, now: float) -> float:
        den = self.total(denominator, now)
        return self.total(numerator, now) / den if den else 0.0

    def _expire(self, now: float) -> None:
        limit = now - self.window.seconds - self._bucket_s  # buckets ending before the window
        if limit < self._oldest_kept:
            return
        for key in [k for k in self._counts if k[1] <= limit]:
            self._totals[key[0]] -= self._counts.pop(key)
            self._expired.append(f"{key[0].value}:{key[1]}")
        self._oldest_kept = int(limit) + self._bucket_s

    def prune(self, now: float) -> list[str]:
        """Forget buckets that left the window; returns their storage field names."""
        self._expire(now)
        out, self._expired = self._expired, []
        return out

    def drain(self) -> list[CounterDelta]:
        """Increments since the last drain, for the store to persist."""
        out, self._pending = self._pending, []
        return out

    def load(self, fields: Mapping[str, int] | Iterable[tuple[str, int]]) -> None:
        items = fields.items() if isinstance(fields, Mapping) else fields
        for name, value in items:
            code, _, bucket = name.partition(":")
            try:
                key = (Counter(code), int(bucket))
                amount = int(value)
            except ValueError:
                continue
            self._counts[key] = self._counts.get(key, 0) + amount
            self._totals[key[0]] += amount
        self._oldest_kept = 0

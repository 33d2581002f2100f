"""Time source for prepaid.

The debit ticker, card expiry, PIN lock-outs and bundle cycles all read time from a `Clock`
so tests can replay a 90-second call in microseconds and simulations can run faster than
real time without changing the code under test.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that only moves when told to; `sleep` just yields to the loop."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def set(self, ts: float) -> None:
        self._now = ts

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


class ScaledClock:
    """Real time sped up `scale` times from `start`, for simulations and fault tests that
    need the real asyncio scheduling (tasks cancelled mid-flight) but not real minutes."""

    def __init__(self, scale: float, start: float = 1_800_000_000.0) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = scale
        self._start = start
        self._t0 = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._t0) * self.scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)


def to_ms(ts: float) -> int:
    return round(ts * 1000)

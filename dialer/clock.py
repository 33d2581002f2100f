"""Time source for the dialer.

Pacing, dial rules and the simulation all take time from a `Clock` rather than from the
system, so hours of call-centre time can be replayed in seconds and tests are exact.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to (tests, simulation)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def set(self, ts: float) -> None:
        self._now = ts

    def advance(self, seconds: float) -> None:
        self._now += seconds


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)

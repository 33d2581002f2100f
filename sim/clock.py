"""Simulated time: wall-clock stamps and sleeps, both scaled by a speed factor.

Tests run the simulator at e.g. 20x so a 5 s talk takes 0.25 s of real time while
every duration Asterisk would report (Cdr Duration, ANSWEREDTIME) still reads 5 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class SimClock:
    """Simulated epoch time that advances `speed` times faster than the real clock."""

    def __init__(
        self,
        speed: float = 1.0,
        *,
        start: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self._monotonic = monotonic
        self._origin_mono = monotonic()
        self._origin_epoch = wall() if start is None else start
        self.started_at = self._origin_epoch

    def now(self) -> float:
        """Simulated seconds since the epoch."""
        return self._origin_epoch + (self._monotonic() - self._origin_mono) * self.speed

    def real_seconds(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds) / self.speed

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(self.real_seconds(sim_seconds))

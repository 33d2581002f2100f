"""What the benchmarks share: pinning a process to a core and reading percentiles."""

from __future__ import annotations

import contextlib
import os


def pin_to_core(cpu: int) -> None:
    """Keep the server and the driver on different cores where there are two."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})


def percentile_ms(seconds: list[float], q: float) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

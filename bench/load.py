"""What the benchmarks share: a server process with readable CPU time, core pinning and
percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any


def pin_to_core(cpu: int) -> None:
    """Keep the server and the driver on different cores where there are two."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})


def percentile_ms(seconds: list[float], q: float) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def serve_control(conn: Connection, port: int) -> None:
    """Answer the driver: port first, then (user, kernel) CPU seconds between 'mark' and
    'report'."""
    loop = asyncio.get_running_loop()
    conn.send(port)
    mark = os.times()
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message == "mark":
            mark = os.times()
        elif message == "report":
            now = os.times()
            conn.send((now.user - mark.user, now.system - mark.system))
        else:
            return


class ServerProcess:
    """A server in its own process on core 0, with its CPU time readable per phase.

    On a shared, noisy machine throughput moves with the neighbours' load; the server's
    CPU time per request does much less, so benchmarks print both.
    """

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=target, args=(child, 0, *args), daemon=True)
        self._proc.start()
        self.port: int = self._conn.recv()

    def mark(self) -> None:
        self._conn.send("mark")

    def cpu_since_mark(self) -> float:
        return sum(self.cpu_split_since_mark())

    def cpu_split_since_mark(self) -> tuple[float, float]:
        """(user, kernel) CPU seconds of the server since mark()."""
        self._conn.send("report")
        user, kernel = self._conn.recv()
        return float(user), float(kernel)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.kill()

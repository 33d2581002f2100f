"""One command at a time on a session, first come first served.

asyncio.Lock does this too, but costs a coroutine and two calls per command even when
nobody waits, which is always on the hot path; this costs one attribute test then.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Turns:
    """FIFO mutual exclusion: `if t.busy: await t.wait() else: t.busy = True`, then
    `t.release()` in a `finally`. A released turn passes straight to the first waiter
    (busy stays true), so a newcomer cannot overtake the queue."""

    __slots__ = ("_queue", "busy")

    def __init__(self) -> None:
        self.busy = False
        self._queue: deque[asyncio.Future[None]] | None = None

    async def wait(self) -> None:
        """Wait until the turn is handed to us; we hold it when this returns."""
        if self._queue is None:
            self._queue = deque()
        queue = self._queue
        waiter = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.cancelled():
                if waiter in queue:  # release() may have dropped it already
                    queue.remove(waiter)
            else:
                self.release()  # handed the turn while being cancelled: pass it on
            raise

    def release(self) -> None:
        queue = self._queue
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the turn is theirs now
                return
        self.busy = False

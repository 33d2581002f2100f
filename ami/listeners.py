"""Delivery of notifications to subscriber callbacks, in order, without blocking the caller.

A plain function runs inline. A coroutine function's awaitable is queued on that
subscriber's own worker task, so each subscriber sees notifications in the order they
happened (a Hangup never overtakes its Newchannel) and a slow subscriber never stalls
the AMI reader. A callback that raises is logged and the others keep running.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

BACKLOG_WARNING = 10_000


class SerialDispatcher:
    def __init__(self, logger: Any, failure_event: str) -> None:
        self._log = logger
        self._failure_event = failure_event
        self._queues: dict[object, asyncio.Queue[Awaitable[object]]] = {}
        self._workers: dict[object, asyncio.Task[None]] = {}

    def deliver(self, key: object, callback: Callable[..., object], *args: object) -> None:
        """Call `callback(*args)`; `key` identifies the subscriber whose order is kept."""
        try:
            result = callback(*args)
        except Exception:
            self._log.exception(self._failure_event, callback=_name(callback))
            return
        if not inspect.isawaitable(result):
            return
        queue = self._queues.get(key)
        if queue is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._log.error(self._failure_event, callback=_name(callback), error="no loop")
                _discard(result)
                return
            queue = asyncio.Queue()
            self._queues[key] = queue
            self._workers[key] = loop.create_task(self._work(queue, _name(callback)))
        queue.put_nowait(result)
        if queue.qsize() == BACKLOG_WARNING:
            self._log.warning(
                "ami_subscriber_backlog", callback=_name(callback), queued=BACKLOG_WARNING
            )

    async def _work(self, queue: asyncio.Queue[Awaitable[object]], name: str) -> None:
        while True:
            awaitable = await queue.get()
            try:
                await awaitable
            except asyncio.CancelledError:
                raise
            except Exception:
                self._log.exception(self._failure_event, callback=name)
            finally:
                queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued coroutine has run (tests, orderly shutdown)."""
        for queue in list(self._queues.values()):
            await queue.join()

    async def close(self) -> None:
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        for task in workers:
            try:
                await task
            except asyncio.CancelledError:
                pass
        for queue in self._queues.values():
            while not queue.empty():
                _discard(queue.get_nowait())
        self._queues.clear()
        self._workers.clear()


def _discard(awaitable: Awaitable[object]) -> None:
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


def _name(callback: Callable[..., object]) -> str:
    return getattr(callback, "__qualname__", None) or repr(callback)

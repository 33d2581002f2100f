"""How the ticker's debit batches reach Redis.

`AsyncDebits` pipelines them on the service's asyncio client: simple, and fine while the
gateway's event loop is not busy. Under load, though, every await of the ticker waits its
turn behind all the call set-ups and hangups the loop has ready, and redis-py's asyncio
client packs commands in Python. `ThreadedDebits` sends each batch from one dedicated
thread over its own synchronous connection (commands packed by hiredis in C, socket I/O
outside the GIL): the event loop awaits one future per batch, so debits and cut-offs stay
on time when the loop is crowded, and a debit costs a fraction of the CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import redis
from redis.exceptions import NoScriptError

from prepaid.cdr import RELAY_CHUNK, RelayItem, appended, queue_appends, queue_cleanups
from prepaid.debit import DebitReply, debit_keys
from prepaid.scripts import RedisClient, script_text
from prepaid.sessions import SessionService

DebitCall = tuple[str, str, list[int | str]]  # account, session id, debit_args(...)
SettleCall = tuple[list[str], list[Any]]  # settle.lua keys, args


class DebitTransport(Protocol):
    async def debit_many(self, calls: Sequence[DebitCall]) -> list[DebitReply | Exception]:
        """One reply (or the error of that one command) per call, in order; raises when
        Redis cannot be reached at all."""
        ...

    async def relay(self, items: Sequence[RelayItem]) -> None:
        """Relay settled CDRs to the stream (see prepaid.cdr.queue_relays); raises if any
        could not be (they stay in their outboxes and can be retried)."""
        ...

    async def settle_many(self, calls: Sequence[SettleCall]) -> list[Any]:
        """settle.lua once per (keys, args), in order: raw replies or per-command errors."""
        ...

    async def close(self) -> None: ...


class AsyncDebits:
    def __init__(self, service: SessionService, client: RedisClient | None = None) -> None:
        self._svc = service
        self._client = client

    async def debit_many(self, calls: Sequence[DebitCall]) -> list[DebitReply | Exception]:
        return await self._svc.debit_many(calls, self._client)

    async def relay(self, items: Sequence[RelayItem]) -> None:
        await self._svc.relay_async(items)

    async def settle_many(self, calls: Sequence[SettleCall]) -> list[Any]:
        return await self._svc.settle_many(calls)

    async def close(self) -> None:
        return None


class ThreadedDebits:
    def __init__(self, client: redis.Redis | redis.RedisCluster) -> None:
        self._client = client
        self._script = script_text("debit")
        self._sha: str | None = None
        self._relay_script = script_text("cdr_append")
        self._relay_sha: str | None = None
        self._settle_script = script_text("settle")
        self._settle_sha: str | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="prepaid-debits")

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ThreadedDebits:
        kwargs.setdefault("socket_timeout", 5)
        return cls(redis.Redis.from_url(url, **kwargs))

    async def debit_many(self, calls: Sequence[DebitCall]) -> list[DebitReply | Exception]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, list(calls))

    def _send(self, calls: Sequence[DebitCall]) -> list[Any]:
        assert self._sha is not None
        pipe = self._client.pipeline(transaction=False)
        for account, sid, args in calls:
            pipe.evalsha(self._sha, 2, *debit_keys(account, sid), *args)
        return list(pipe.execute(raise_on_error=False))

    def _run(self, calls: Sequence[DebitCall]) -> list[DebitReply | Exception]:
        if self._sha is None:
            self._sha = str(self._client.script_load(self._script))
        raw = self._send(calls)
        redo = [i for i, r in enumerate(raw) if isinstance(r, NoScriptError)]
        if redo:  # Redis restarted with an empty script cache
            self._sha = str(self._client.script_load(self._script))
            for i, r in zip(redo, self._send([calls[i] for i in redo]), strict=True):
                raw[i] = r
        return [r if isinstance(r, Exception) else DebitReply.parse(r) for r in raw]

    async def relay(self, items: Sequence[RelayItem]) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._relay, list(items))

    def _relay(self, items: Sequence[RelayItem]) -> None:
        for i in range(0, len(items), RELAY_CHUNK):
            chunk = items[i:i + RELAY_CHUNK]
            res: list[Any] = []
            for attempt in range(2):
                if self._relay_sha is None or attempt:
                    self._relay_sha = str(self._client.script_load(self._relay_script))
                pipe = self._client.pipeline(transaction=False)
                queue_appends(pipe, self._relay_sha, chunk)
                res = list(pipe.execute(raise_on_error=False))
                if not any(isinstance(r, NoScriptError) for r in res):
                    break
            done = appended(chunk, res)
            if done:
                pipe = self._client.pipeline(transaction=False)
                queue_cleanups(pipe, done)
                pipe.execute()
            for r in res:
                if isinstance(r, Exception):
                    raise r

    async def settle_many(self, calls: Sequence[SettleCall]) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._settle, list(calls))

    def _settle(self, calls: Sequence[SettleCall]) -> list[Any]:
        res: list[Any] = []
        for attempt in range(2):
            if self._settle_sha is None or attempt:
                self._settle_sha = str(self._client.script_load(self._settle_script))
            pipe = self._client.pipeline(transaction=False)
            for k, a in calls:
                pipe.evalsha(self._settle_sha, len(k), *k, *a)
            res = list(pipe.execute(raise_on_error=False))
            if not any(isinstance(r, NoScriptError) for r in res):
                break  # (NOSCRIPT: nothing ran, safe to send again)
        return res

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._client.close)
        self._pool.shutdown(wait=False)

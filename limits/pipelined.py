"""One pipelined Redis connection for the two scripts every call runs (acquire, release).

Why not redis-py here: its asyncio client spends 100-130 us of CPU per EVALSHA (pool
checkout, retry wrapper, per-argument encoding, response parsing through several layers)
where Redis itself needs about 20 us, and every call pays two. On one connection with
requests written back to back and replies matched in order (Redis answers in order), the
same EVALSHA costs about a fifth of that, and a burst of calls shares the socket writes.

Scope: a single server (`redis://`, `unix://`) without TLS. A cluster, a sentinel-managed
primary or TLS keep redis-py (`for_client` returns None and the scripts run as before).

Failures look exactly like redis-py's, so the backend-down policy of the caller applies
unchanged: a lost or refused connection raises redis ConnectionError, no reply within the
socket timeout raises TimeoutError (and drops the connection: later replies could no
longer be matched), error replies raise ResponseError (NoScriptError, BusyLoadingError,
ReadOnlyError where redis-py would). NOSCRIPT (a restarted or replaced Redis) loads the
script and runs it again: it had not run. A request whose connection broke before its
reply is sent once more on a new connection only by `evalsha(..., idempotent=True)`;
acquire and release are (same lease id: held once, freed once).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import (
    BusyLoadingError,
    NoScriptError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

DEFAULT_TIMEOUT = 10.0


class ReplyLost(RedisConnectionError):
    """The request was written but its connection broke before the reply: it may have
    run. (A TimeoutError says the same.)"""


@dataclass(frozen=True)
class Endpoint:
    host: str = ""
    port: int = 6379
    path: str = ""  # a Unix socket when set
    db: int = 0
    username: str | None = None
    password: str | None = None
    timeout: float = DEFAULT_TIMEOUT  # connecting, and each reply

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.path else f"{self.host}:{self.port}"


def for_client(client: Any) -> PipelinedRedis | None:
    """A pipelined connection to the server `client` talks to, or None when `client` is a
    cluster, a sentinel, TLS, or anything else this connection does not speak."""
    if not isinstance(client, Redis):
        return None
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        return None
    cls = pool.connection_class
    kw = pool.connection_kwargs
    if issubclass(cls, SSLConnection) or kw.get("credential_provider") is not None:
        return None
    timeout = kw.get("socket_timeout") or DEFAULT_TIMEOUT
    common: dict[str, Any] = {
        "db": int(kw.get("db") or 0), "username": kw.get("username"),
        "password": kw.get("password"), "timeout": float(timeout)}
    if issubclass(cls, UnixDomainSocketConnection):
        return PipelinedRedis(Endpoint(path=str(kw["path"]), **common))
    return PipelinedRedis(Endpoint(host=str(kw.get("host") or "localhost"),
                                   port=int(kw.get("port") or 6379), **common))


def pack(*args: bytes | str | int) -> bytes:
    """A RESP array of bulk strings (str as UTF-8, int in decimal), packed by hiredis in
    C: a decision sends two commands of some twenty arguments, 7 us each in Python."""
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]  # stub: a 1-tuple
    return packed


def _error(reply: hiredis.ReplyError) -> RedisError:
    text = str(reply)
    code = text.split(" ", 1)[0]
    if code == "NOSCRIPT":
        return NoScriptError(text)
    if code == "LOADING":
        return BusyLoadingError(text)
    if code == "READONLY":
        return ReadOnlyError(text)
    return ResponseError(text)


class _Waiter:
    __slots__ = ("deadline", "future")

    def __init__(self, future: asyncio.Future[Any], deadline: float) -> None:
        self.future = future
        self.deadline = deadline


class _Resp(asyncio.Protocol):
    """Replies are matched to requests in order; anything unexpected breaks the link."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiters: collections.deque[_Waiter] = collections.deque()
        self.broken: Exception | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, data: bytes) -> asyncio.Future[Any]:
        if self.broken is not None or self.transport is None:
            raise RedisConnectionError(f"Redis connection lost: {self.broken}")
        future: asyncio.Future[Any] = self.loop.create_future()
        self.waiters.append(_Waiter(future, self.loop.time() + self.timeout))
        self.transport.write(data)
        if self._timer is None:
            self._timer = self.loop.call_at(self.waiters[0].deadline, self._check_deadline)
        return future

    def data_received(self, data: bytes) -> None:
        try:
            self.reader.feed(data)
            while (reply := self.reader.gets()) is not False:
                if not self.waiters:
                    raise hiredis.ProtocolError("a reply nobody asked for")
                waiter = self.waiters.popleft()
                if not waiter.future.done():
                    waiter.future.set_result(reply)
        except hiredis.ProtocolError as exc:
            self._break(ReplyLost(f"Redis protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._break(ReplyLost(
            f"Redis closed the connection{': ' + str(exc) if exc else ''}"))

    def _check_deadline(self) -> None:
        self._timer = None
        if not self.waiters:
            return
        head = self.waiters[0].deadline
        if head <= self.loop.time():
            self._break(RedisTimeoutError(f"no reply from Redis within {self.timeout}s"))
        else:
            self._timer = self.loop.call_at(head, self._check_deadline)

    def _break(self, exc: Exception) -> None:
        if self.broken is None:
            self.broken = exc
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters, self.waiters = self.waiters, collections.deque()
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()


class PipelinedRedis:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._proto: _Resp | None = None
        self._connecting: asyncio.Future[_Resp] | None = None

    async def call(self, *args: bytes | str | int) -> Any:
        """One command; error replies raise (redis-py's exception classes)."""
        proto = self._proto
        if proto is None or proto.broken is not None or proto.loop is not _running_loop():
            proto = await self._connect()
        reply = await proto.send(pack(*args))
        if isinstance(reply, hiredis.ReplyError):
            raise _error(reply)
        return reply

    async def evalsha(self, sha: str, script: str, keys: Sequence[str],
                      args: Sequence[str | int], *, idempotent: bool = False) -> Any:
        cmd = (b"EVALSHA", sha, len(keys), *keys, *args)
        try:
            try:
                return await self.call(*cmd)
            except (RedisConnectionError, RedisTimeoutError):
                if not idempotent:
                    raise
                return await self.call(*cmd)  # on a new connection
        except NoScriptError:
            await self.call(b"SCRIPT", b"LOAD", script)
            return await self.call(*cmd)

    async def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()

    async def _connect(self) -> _Resp:
        if self._connecting is not None and self._connecting.get_loop() is _running_loop():
            return await asyncio.shield(self._connecting)
        loop = _running_loop()
        self._connecting = loop.create_future()
        try:
            proto = await self._open(loop)
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else RedisConnectionError(str(exc))
            self._connecting.set_exception(failure)
            self._connecting.exception()  # retrieved: waiters re-raise their own copy
            self._connecting = None
            raise
        self._proto = proto
        self._connecting.set_result(proto)
        self._connecting = None
        return proto

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Resp:
        ep = self.endpoint
        try:
            async with asyncio.timeout(ep.timeout):
                if ep.path:
                    transport, proto = await loop.create_unix_connection(
                        lambda: _Resp(loop, ep.timeout), ep.path)
                else:
                    transport, proto = await loop.create_connection(
                        lambda: _Resp(loop, ep.timeout), ep.host, ep.port)
        except TimeoutError:
            raise RedisTimeoutError(f"connecting to Redis at {ep} timed out") from None
        except OSError as exc:
            raise RedisConnectionError(f"cannot connect to Redis at {ep}: {exc}") from None
        proto.connection_made(transport)  # uvloop may call it only on the next loop turn
        setup: list[tuple[bytes | str | int, ...]] = []
        if ep.password is not None:
            setup.append((b"AUTH", ep.username, ep.password) if ep.username
                         else (b"AUTH", ep.password))
        if ep.db:
            setup.append((b"SELECT", ep.db))
        replies = [proto.send(pack(*cmd)) for cmd in setup]
        for reply in replies:
            result = await reply
            if isinstance(result, hiredis.ReplyError):
                if proto.transport is not None:
                    proto.transport.abort()
                raise RedisConnectionError(f"Redis at {ep} refused the connection setup: "
                                           f"{result}")
        return proto


def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


__all__ = ["Endpoint", "PipelinedRedis", "ReplyLost", "for_client", "pack"]

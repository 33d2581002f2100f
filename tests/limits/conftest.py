"""Fixtures for limits/: a service over the real test Redis, with a clock tests can move."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError

from limits import CallRequest, Direction, EmergencyNumbers, LimitsService
from tests.support.servers import RedisServer, free_port, wait_port

SITE = "test"
EMERGENCY = EmergencyNumbers(("112", "911", "999", "000", "110", "119"))


class FakeClock:
    """Wall-clock seconds that only move when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeService = Callable[..., LimitsService]
Pooled = Callable[[], aioredis.Redis]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_service(redis_client: aioredis.Redis, clock: FakeClock) -> MakeService:
    def make(client: aioredis.Redis | None = None, **kw: Any) -> LimitsService:
        kw.setdefault("clock", clock)
        kw.setdefault("emergency", EMERGENCY)
        kw.setdefault("lease_ttl", 30.0)
        return LimitsService(client or redis_client, SITE, **kw)

    return make


@pytest.fixture
def service(make_service: MakeService) -> LimitsService:
    return make_service()


def pooled_client(url: str, connections: int = 16) -> aioredis.Redis:
    """A client whose callers wait for a free connection, as a gateway's must (the default
    pool raises "Too many connections" past 100 concurrent commands)."""
    return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
        url, max_connections=connections, timeout=20))


@pytest.fixture
async def pooled(redis_proc: RedisServer, redis_client: aioredis.Redis,
                 ) -> AsyncIterator[Pooled]:
    """Factory of pooled clients on the flushed test db, closed at the end."""
    made: list[aioredis.Redis] = []

    def make() -> aioredis.Redis:
        made.append(pooled_client(redis_proc.url))
        return made[-1]

    try:
        yield make
    finally:
        for c in made:
            await c.aclose()


@pytest.fixture
async def aof_client(redis_aof: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_aof.url, socket_timeout=2, socket_connect_timeout=1)
    try:
        yield client
    finally:
        await client.aclose()


async def wait_ready(client: aioredis.Redis) -> None:
    """After a restart Redis answers LOADING until its AOF is replayed."""
    for _ in range(200):
        try:
            await client.ping()
            return
        except (BusyLoadingError, RedisConnectionError):
            await asyncio.sleep(0.02)
    raise TimeoutError("redis did not finish loading")


def out_call(tenant: str = "acme", **kw: Any) -> CallRequest:
    kw.setdefault("dest", "4930123456")
    return CallRequest(tenant, Direction.OUT, **kw)


def in_call(tenant: str = "acme", **kw: Any) -> CallRequest:
    return CallRequest(tenant, Direction.IN, **kw)


async def used(service: LimitsService) -> dict[str, int]:
    return await service.in_use()


async def assert_counters_exact(service: LimitsService) -> dict[str, int]:
    """Invariant 1: every counter equals the number of leases holding its scope."""
    expected: Counter[str] = Counter()
    for lease in await service.leases():
        expected.update(lease.scopes)
    actual = await used(service)
    assert actual == dict(expected)
    return actual


@pytest.fixture
def cluster_port(tmp_path: Path) -> Iterator[int]:
    """A one-node Redis Cluster (all 16384 slots): it refuses any script call whose keys
    span slots (CROSSSLOT), so the hash-tag layout is checked by the server itself."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server not installed")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
         "--cluster-enabled", "yes", "--cluster-port", str(free_port()),
         "--cluster-config-file", str(tmp_path / "nodes.conf"),
         "--save", "", "--appendonly", "no", "--logfile", str(tmp_path / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"CLUSTER ADDSLOTSRANGE 0 16383\r\n")
            assert sock.recv(64).startswith(b"+OK")
            for _ in range(500):  # the node declares the cluster ok a moment later
                sock.sendall(b"CLUSTER INFO\r\n")
                if b"cluster_state:ok" in sock.recv(4096):
                    break
                time.sleep(0.01)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)

"""Shared fixtures: a real redis-server and a real mosquitto on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.support.servers import MosquittoServer, RedisServer, mosquitto_server, redis_server

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "asterisk"


@pytest.fixture(scope="session")
def asterisk_fixtures() -> Path:
    """The recordings of a real Asterisk 22 (see shared/fixtures/asterisk/README.md)."""
    if not FIXTURES.is_dir():
        pytest.fail(f"recordings not found at {FIXTURES}: shared/ must sit beside the repo")
    return FIXTURES


@pytest.fixture(scope="session")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests get a flushed db through `redis_client`."""
    with redis_server(tmp_path_factory.mktemp("redis")) as srv:
        yield srv


@pytest.fixture
def redis_aof(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server with AOF on, for restart and crash tests."""
    with redis_server(tmp_path / "redis-aof", appendonly=True) as srv:
        yield srv


@pytest.fixture
async def redis_client(redis_proc: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_proc.url)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def mosquitto_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    with mosquitto_server(tmp_path_factory.mktemp("mosquitto")) as srv:
        yield srv

"""The pipelined connection that carries acquire and release: many calls share one socket
and each still gets its own answer; a frozen, restarted or password-protected Redis behaves
as it did through redis-py (the backend-down policy, then exact counters)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from limits import LimitsService, Reason, Result
from limits.pipelined import Endpoint, PipelinedRedis, for_client, pack
from tests.limits.conftest import (
    EMERGENCY,
    SITE,
    FakeClock,
    assert_counters_exact,
    out_call,
    used,
    wait_ready,
)
from tests.support.servers import RedisServer

ECHO = "return {ARGV[1], KEYS[1], tonumber(ARGV[2]) * 2}"


async def test_a_single_server_client_gets_the_pipelined_path(
    service: LimitsService, redis_client: aioredis.Redis
) -> None:
    assert service.scripts.pipe is not None
    cluster_like = aioredis.Redis.from_url("rediss://127.0.0.1:1/0")
    assert for_client(cluster_like) is None  # TLS stays on redis-py
    await cluster_like.aclose()


async def test_concurrent_requests_on_one_connection_each_get_their_own_reply(
    redis_client: aioredis.Redis,
) -> None:
    pipe = for_client(redis_client)
    assert pipe is not None
    sha = await redis_client.script_load(ECHO)
    try:
        replies = await asyncio.gather(*(
            pipe.evalsha(sha, ECHO, [f"k{i}"], [f"v{i}", i]) for i in range(2000)))
    finally:
        await pipe.close()
    assert replies == [[f"v{i}".encode(), f"k{i}".encode(), 2 * i] for i in range(2000)]


async def test_an_emptied_script_cache_is_refilled(redis_client: aioredis.Redis) -> None:
    pipe = for_client(redis_client)
    assert pipe is not None
    sha = await redis_client.script_load(ECHO)
    await redis_client.script_flush()
    try:
        assert await pipe.evalsha(sha, ECHO, ["k"], ["v", 4]) == [b"v", b"k", 8]
    finally:
        await pipe.close()


async def test_an_error_reply_raises_and_the_connection_stays_usable(
    redis_client: aioredis.Redis,
) -> None:
    from redis.exceptions import ResponseError

    pipe = for_client(redis_client)
    assert pipe is not None
    try:
        with pytest.raises(ResponseError, match="wrong number of arguments"):
            await pipe.call(b"INCR")
        assert await pipe.call(b"PING") == b"PONG"
    finally:
        await pipe.close()


async def test_unreachable_redis_is_a_connection_error() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    pipe = PipelinedRedis(Endpoint(host="127.0.0.1", port=1, timeout=1.0))
    with pytest.raises(RedisConnectionError, match=r"cannot connect to Redis at 127\.0\.0\.1:1"):
        await pipe.call(b"PING")


@pytest.fixture
async def fast_timeout_client(redis_aof: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_aof.url, socket_timeout=0.5,
                                     socket_connect_timeout=0.5)
    try:
        yield client
    finally:
        await client.aclose()


async def test_frozen_redis_denies_within_the_timeout_then_recovers_exactly(
    redis_aof: RedisServer, fast_timeout_client: aioredis.Redis, clock: FakeClock,
) -> None:
    service = LimitsService(fast_timeout_client, SITE, emergency=EMERGENCY, clock=clock)
    await service.settings.set_trunk_limit("pri1", 3)
    held = (await service.authorize(out_call(trunk="pri1"))).lease_id
    os.kill(redis_aof.proc.pid, signal.SIGSTOP)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        frozen = await service.authorize(out_call(trunk="pri1"))
        waited = loop.time() - started
    finally:
        os.kill(redis_aof.proc.pid, signal.SIGCONT)
    assert (frozen.result, frozen.reason) == (Result.DENY, Reason.BACKEND_UNAVAILABLE)
    assert waited < 3.0  # one timeout, one retry on a new connection: not a hang
    await wait_ready(fast_timeout_client)
    # The refused request ran once Redis woke up; the next call writes back its release.
    after = await service.authorize(out_call(trunk="pri1"))
    assert after.allowed
    assert not service.journal
    assert (await used(service))["trunk/pri1"] == 2  # held + after, not the refused one
    assert await service.release(held, by="hangup")
    assert await service.release(after.lease_id, by="hangup")
    await assert_counters_exact(service)
    assert (await used(service)).get("trunk/pri1", 0) == 0
    await service.aclose()


async def test_password_and_database_from_the_url_are_used(
    redis_aof: RedisServer, clock: FakeClock,
) -> None:
    admin = aioredis.Redis.from_url(redis_aof.url)
    await admin.config_set("requirepass", "s3cret")
    client = aioredis.Redis.from_url(f"redis://:s3cret@127.0.0.1:{redis_aof.port}/3")
    service = LimitsService(client, SITE, emergency=EMERGENCY, clock=clock)
    try:
        assert service.scripts.pipe is not None
        decision = await service.authorize(out_call())
        assert decision.allowed
        db3 = aioredis.Redis.from_url(f"redis://:s3cret@127.0.0.1:{redis_aof.port}/3")
        db0 = aioredis.Redis.from_url(f"redis://:s3cret@127.0.0.1:{redis_aof.port}/0")
        assert await db3.exists(service.keys.lease(decision.lease_id)) == 1
        assert await db0.exists(service.keys.lease(decision.lease_id)) == 0
        await db3.aclose()
        await db0.aclose()
        wrong = aioredis.Redis.from_url(f"redis://:nope@127.0.0.1:{redis_aof.port}/3")
        refused = await LimitsService(wrong, SITE, emergency=EMERGENCY,
                                      clock=clock).authorize(out_call())
        assert refused.reason is Reason.BACKEND_UNAVAILABLE
        await wrong.aclose()
    finally:
        await service.aclose()
        await client.aclose()
        await admin.aclose()


def test_it_works_under_uvloop_as_the_daemon_runs_it(redis_proc: RedisServer) -> None:
    """uvloop hands the transport to the protocol a loop turn later than asyncio does."""
    import uvloop

    async def run() -> list[object]:
        client = aioredis.Redis.from_url(redis_proc.url)
        pipe = for_client(client)
        assert pipe is not None
        try:
            sha = await client.script_load(ECHO)
            return list(await asyncio.gather(
                *(pipe.evalsha(sha, ECHO, ["k"], [str(i), i]) for i in range(50))))
        finally:
            await pipe.close()
            await client.aclose()

    assert uvloop.run(run()) == [[str(i).encode(), b"k", 2 * i] for i in range(50)]


def _resp(*args: bytes | str | int) -> bytes:
    """RESP as the protocol spells it: *N, then $len and the bytes of each argument."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


@settings(max_examples=300)
@given(st.lists(st.one_of(st.binary(max_size=20), st.text(max_size=20),
                          st.integers(min_value=-(2**63), max_value=2**63 - 1)),
                min_size=1, max_size=25))
def test_commands_are_packed_as_resp_spells_them(args: list[bytes | str | int]) -> None:
    assert pack(*args) == _resp(*args)

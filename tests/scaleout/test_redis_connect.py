"""connect_redis: which client each url gives, clear errors for bad urls, and the cluster
and sentinel forms against real servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from gateway.redis_connect import GatedRedisCluster, connect_redis
from limits import CallRequest, Direction, EmergencyNumbers, LimitsService, Reason
from tests.scaleout.conftest import MakeClient
from tests.support.redis_cluster import RedisClusterProcesses, SentinelSetup, redis_sentinel
from tests.support.servers import RedisServer, free_port


@pytest.fixture
async def closing() -> AsyncIterator[list[Redis | RedisCluster]]:
    made: list[Redis | RedisCluster] = []
    yield made
    for client in made:
        await client.aclose()


def _connect(made: list[Redis | RedisCluster], url: str, **kw: Any) -> Redis | RedisCluster:
    kw.setdefault("cluster", False)
    kw.setdefault("socket_timeout", 1.5)
    client = connect_redis(url, **kw)
    made.append(client)
    return client


# -- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "host", "port", "db", "password"), [
    ("redis://127.0.0.1:6380/2", "127.0.0.1", 6380, 2, None),
    ("redis://:s%40cret@redis.example:6379", "redis.example", 6379, 0, "s@cret"),
    ("redis://redis.example", "redis.example", 6379, 0, None),
    ("rediss://user:pw@redis.example:6390/1", "redis.example", 6390, 1, "pw"),
])
async def test_single_server_urls(closing: list[Any], url: str, host: str, port: int, db: int,
                                  password: str | None) -> None:
    client = _connect(closing, url)
    assert type(client) is Redis
    pool = client.connection_pool
    assert isinstance(pool, BlockingConnectionPool) and pool.max_connections == 256
    kw = pool.connection_kwargs
    assert (kw["host"], kw.get("port", 6379), kw.get("db", 0), kw.get("password")) == (
        host, port, db, password)
    assert kw["socket_timeout"] == 1.5 and kw["socket_connect_timeout"] == 1.5


async def test_rediss_url_uses_tls_and_unix_url_a_socket(closing: list[Any]) -> None:
    tls = _connect(closing, "rediss://redis.example:6390")
    assert isinstance(tls, Redis) and "SSL" in tls.connection_pool.connection_class.__name__
    unix = _connect(closing, "unix:///run/redis/redis.sock?db=3")
    assert isinstance(unix, Redis)
    assert unix.connection_pool.connection_kwargs["path"] == "/run/redis/redis.sock"
    assert unix.connection_pool.connection_kwargs["db"] == 3


@pytest.mark.parametrize(("url", "cluster", "nodes", "password"), [
    ("redis+cluster://10.0.0.1:7000,10.0.0.2:7001,10.0.0.3",
     False, ["10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.3:6379"], None),
    ("redis+cluster://:pw@node-a:7000", False, ["node-a:7000"], "pw"),
    ("redis://10.0.0.9:7005/0", True, ["10.0.0.9:7005"], None),
    ("REDIS+CLUSTER://[::1]:7000,10.0.0.2", False, ["::1:7000", "10.0.0.2:6379"], None),
])
async def test_cluster_urls(closing: list[Any], url: str, cluster: bool, nodes: list[str],
                            password: str | None) -> None:
    client = _connect(closing, url, cluster=cluster)
    assert isinstance(client, GatedRedisCluster)
    assert list(client.nodes_manager.startup_nodes) == nodes
    assert client.get_connection_kwargs().get("password") == password


async def test_rediss_cluster_url_uses_tls(closing: list[Any]) -> None:
    client = _connect(closing, "rediss+cluster://node-a:7000")
    assert isinstance(client, RedisCluster)
    connection_class: Any = client.get_connection_kwargs()["connection_class"]
    assert "SSL" in connection_class.__name__


@pytest.mark.parametrize(("url", "master", "db", "sentinels"), [
    ("redis+sentinel://10.0.0.1:26379,10.0.0.2/mymaster/2", None, 2,
     [("10.0.0.1", 26379), ("10.0.0.2", 26379)]),
    ("redis+sentinel://10.0.0.1", "mymaster", 0, [("10.0.0.1", 26379)]),
    ("redis+sentinel://10.0.0.1/4", "mymaster", 4, [("10.0.0.1", 26379)]),
    ("redis+sentinel://10.0.0.1/mymaster", "mymaster", 0, [("10.0.0.1", 26379)]),
])
async def test_sentinel_urls(closing: list[Any], url: str, master: str | None, db: int,
                             sentinels: list[tuple[str, int]]) -> None:
    client = _connect(closing, url, sentinel_master=master)
    assert isinstance(client, Redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "mymaster" and pool.connection_kwargs["db"] == db
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs[
        "port"]) for s in pool.sentinel_manager.sentinels] == sentinels


@pytest.mark.parametrize(("url", "kw", "message"), [
    ("", {}, "empty"),
    ("localhost:6379", {}, "must start with redis://"),
    ("http://localhost", {}, "must start with redis://"),
    ("redis://", {}, "no host"),
    ("redis://host:99999", {}, "port '99999'"),
    ("redis://host:abc", {}, "port 'abc'"),
    ("redis://host:", {}, "empty port"),
    ("redis://host/zero", {}, "database number"),
    ("redis://a:1,b:2", {}, "use redis+cluster://"),
    ("redis+cluster://a:1,,b:2", {}, "empty entry between commas"),
    ("redis+cluster://a:1/3", {}, "only database 0"),
    ("redis://a:1/3", {"cluster": True}, "only database 0"),
    ("redis+cluster://a:1?ssl_cert_reqs=none", {}, "not supported for a cluster"),
    ("unix:///tmp/r.sock", {"cluster": True}, "Unix socket"),
    ("unix://", {}, "socket path"),
    ("redis+sentinel://s1:26379", {}, "name the master"),
    ("redis+sentinel://s1/m/1/2", {}, "/MASTER[/db]"),
    ("redis+sentinel://s1/bad$name", {}, "not a valid master name"),
    ("redis+sentinel://s1/one", {"sentinel_master": "two"}, "names master 'one'"),
    ("redis+sentinel://s1/m", {"cluster": True}, "cannot also be a cluster"),
    ("redis://h:1", {"sentinel_master": "m"}, "needs a redis+sentinel:// url"),
    ("redis://h:1", {"socket_timeout": 0}, "socket_timeout"),
    ("redis://h:1", {"max_in_flight": 0}, "max_in_flight"),
    ("redis://h:1?socket_timeout=abc", {}, "redis://h:1"),
])
def test_bad_urls_are_refused_with_the_reason(url: str, kw: dict[str, Any],
                                              message: str) -> None:
    kw.setdefault("cluster", False)
    kw.setdefault("socket_timeout", 1.0)
    with pytest.raises(ValueError) as err:
        connect_redis(url, **kw)
    assert message in str(err.value)


def test_a_password_never_appears_in_an_error() -> None:
    with pytest.raises(ValueError) as err:
        connect_redis("redis://:hunter2@a:1,b:2", cluster=False, socket_timeout=1)
    assert "hunter2" not in str(err.value) and "***@a:1,b:2" in str(err.value)


async def test_a_single_server_client_queues_a_burst_beyond_its_pool(
    redis_proc: RedisServer, closing: list[Any],
) -> None:
    client = _connect(closing, redis_proc.url, max_in_flight=4)
    await client.delete("burst")
    await asyncio.gather(*(client.incr("burst") for _ in range(300)))
    assert await client.get("burst") == b"300"


# -- against a real cluster ---------------------------------------------------------------


async def test_cluster_url_and_a_single_startup_node_both_reach_every_master(
    cluster: RedisClusterProcesses, make_client: MakeClient, closing: list[Any],
) -> None:
    via_list = make_client()
    one_node = _connect(closing, f"redis://{cluster.nodes[0].addr}", cluster=True)
    assert isinstance(one_node, RedisCluster)
    keys = [f"{{k{i}}}" for i in range(30)]  # spread over the three masters
    for i, key in enumerate(keys):
        await via_list.set(key, i)
    values: list[Any] = await asyncio.gather(*(one_node.get(k) for k in keys))
    assert [int(v) for v in values] == list(range(30))
    assert len({cluster.node_for_key(k).port for k in keys}) == 3


async def test_more_commands_than_connections_wait_instead_of_failing(
    make_client: MakeClient,
) -> None:
    client = make_client(max_in_flight=4)
    await asyncio.gather(*(client.incr("{site:x}:n") for _ in range(300)))
    assert await client.get("{site:x}:n") == b"300"
    node = client.get_node_from_key("{site:x}:n")
    assert node is not None and len(node._connections) <= 4 + 64


ECHO_KEY = "return {KEYS[1], ARGV[1]}"


async def test_a_transaction_as_the_first_command_of_a_fresh_client(
    make_client: MakeClient,
) -> None:
    """redis-py learns the layout for it on a throw-away event loop; the client must
    still work on its own loop afterwards (and close cleanly)."""
    client = make_client()
    tx = client.pipeline(transaction=True)  # as limits/settings.py uses it: no `async with`
    tx.hset("{site:a}:config", "x", 1)
    tx.hincrby("{site:a}:config", "x", 2)
    assert await tx.execute() == [1, 3]
    keys = [f"{{k{i}}}" for i in range(12)]
    await asyncio.gather(*(client.set(k, 1) for k in keys))
    assert await client.hget("{site:a}:config", "x") == b"3"


async def test_pipelines_run_scripts_on_every_master_even_one_that_lost_them(
    cluster: RedisClusterProcesses, make_client: MakeClient,
) -> None:
    client = make_client()
    script = client.register_script(ECHO_KEY)
    keys = [f"{{card:{i}}}:card" for i in range(12)]
    assert len({cluster.node_for_key(k).port for k in keys}) == 3
    await script(keys=[keys[0]], args=["warm"])
    for node in cluster.masters():  # as after a restart or a failover
        with node.admin() as r:
            r.script_flush()
    async with client.pipeline(transaction=False) as pipe:
        pipe.set("{card:0}:n", 1)
        for i, key in enumerate(keys):
            await script(keys=[key], args=[i], client=cast(Any, pipe))  # as prepaid queues
        pipe.incr("{card:0}:n")
        results = await pipe.execute()
    assert results == [True, *([k.encode(), str(i).encode()] for i, k in
                               enumerate(keys)), 2]
    for node in cluster.masters():
        with node.admin() as r:
            r.script_flush()
    async with client.pipeline(transaction=True) as tx:  # one slot, MULTI/EXEC
        await script(keys=["{card:0}:card"], args=["tx"], client=cast(Any, tx))
        tx.get("{card:0}:n")
        assert await tx.execute() == [[b"{card:0}:card", b"tx"], b"2"]


async def test_a_script_in_a_pipeline_with_keys_of_two_slots_is_refused(
    make_client: MakeClient,
) -> None:
    client = make_client()
    script = client.register_script(ECHO_KEY)
    with pytest.raises(RedisClusterException, match="same key slot"):
        async with client.pipeline(transaction=False) as pipe:
            await script(keys=["{card:1}:card", "{card:2}:card"], args=["x"],
                         client=cast(Any, pipe))
            await pipe.execute()


async def test_an_unreachable_cluster_is_a_redis_error_and_calls_follow_the_policy(
    closing: list[Any],
) -> None:
    client = _connect(closing, f"redis+cluster://127.0.0.1:{free_port()}", socket_timeout=0.3)
    with pytest.raises(RedisConnectionError):
        await client.ping()
    svc = LimitsService(client, "site1", emergency=EmergencyNumbers(("112",)))
    refused = await svc.authorize(CallRequest("acme", Direction.OUT, dest="4930123"))
    assert refused.reason is Reason.BACKEND_UNAVAILABLE
    emergency = await svc.authorize(CallRequest("acme", Direction.OUT, dest="112"))
    assert emergency.allowed and emergency.journaled


# -- against a real sentinel --------------------------------------------------------------


async def master_addr(pool: Any) -> tuple[str, int]:
    """Where the pool sends writes now (asks the sentinels)."""
    host, port = await pool.get_master_address()
    return str(host), int(port)


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSetup]:
    with redis_sentinel(tmp_path_factory.mktemp("sentinel")) as s:
        yield s


async def test_sentinel_url_follows_the_primary_across_a_failover(
    sentinel: SentinelSetup, closing: list[Any],
) -> None:
    client = _connect(closing, sentinel.url, socket_timeout=2.0)
    assert isinstance(client, Redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    await client.set("before", "1")
    assert await client.wait(1, 1500) == 1  # on the replica before the primary dies
    assert (await master_addr(pool))[1] == sentinel.primary_port

    await asyncio.to_thread(sentinel.kill_primary_and_wait_failover)
    for _ in range(100):  # the first commands after the kill may fail; then it moves on
        try:
            await client.set("after", "2")
            break
        except RedisError:
            await asyncio.sleep(0.05)
    assert (await master_addr(pool))[1] == sentinel.replica_port
    assert await client.get("before") == b"1" and await client.get("after") == b"2"

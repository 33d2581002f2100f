"""Fixtures for scale-out tests: one real 3-master Redis Cluster for the session, clients
made by `gateway.redis_connect.connect_redis`, and a ledger of the Lua scripts that ran.

The session cluster runs with `cluster-require-full-coverage no`, so while one master is
down the sites on the other masters keep working (the set-up the docs recommend)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from gateway.redis_connect import connect_redis
from tests.support.redis_cluster import RedisClusterProcesses, redis_cluster

REPO = Path(__file__).resolve().parents[2]
SCRIPT_PACKAGES = ("limits", "prepaid", "gateway")


class Clock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def lua_files() -> list[Path]:
    return sorted(p for pkg in SCRIPT_PACKAGES for p in (REPO / pkg).glob("*.lua"))


def script_name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@dataclass
class ScriptLedger:
    """Which scripts ran through a client, and the hash slots of the keys of each run.
    redis-py refuses a cross-slot EVALSHA before sending it; the ledger records the slots
    anyway so a test can name the script."""

    by_sha: dict[str, str] = field(default_factory=dict)
    slots: dict[str, list[frozenset[int]]] = field(default_factory=dict)
    unknown: int = 0

    def __post_init__(self) -> None:
        for path in lua_files():
            # Redis names a script by the SHA-1 of its text, as redis-py loads it
            sha = hashlib.sha1(path.read_text(encoding="utf-8").encode()).hexdigest()
            self.by_sha[sha] = script_name(path)

    def watch(self, client: RedisCluster) -> None:
        """Record the scripts `client` runs, alone or in its pipelines."""
        inner: Callable[..., Awaitable[Any]] = client.execute_command
        inner_pipeline = client.pipeline

        async def execute_command(*args: Any, **kwargs: Any) -> Any:
            if args and str(args[0]).upper() in ("EVALSHA", "EVAL"):
                self.record(args)
            return await inner(*args, **kwargs)

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = inner_pipeline(*args, **kwargs)
            queue = pipe.execute_command

            def queue_command(*cmd: Any, **kw: Any) -> Any:
                if cmd and str(cmd[0]).upper() in ("EVALSHA", "EVAL"):
                    self.record(cmd)
                return queue(*cmd, **kw)

            pipe.execute_command = queue_command  # type: ignore[method-assign]
            return pipe

        client.execute_command = execute_command  # type: ignore[method-assign]
        client.pipeline = pipeline  # type: ignore[method-assign]

    def record(self, args: tuple[Any, ...]) -> None:
        sha = args[1].decode() if isinstance(args[1], bytes) else str(args[1])
        name = self.by_sha.get(sha)
        if name is None:
            self.unknown += 1
            return
        keys = args[3:3 + int(args[2])]
        self.slots.setdefault(name, []).append(frozenset(key_slot(_b(k)) for k in keys))

    @property
    def exercised(self) -> set[str]:
        return set(self.slots)

    def cross_slot(self) -> dict[str, list[frozenset[int]]]:
        return {n: [s for s in runs if len(s) > 1] for n, runs in self.slots.items()
                if any(len(s) > 1 for s in runs)}


def _b(key: Any) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    with redis_cluster(tmp_path_factory.mktemp("cluster"), full_coverage=False) as c:
        yield c


MakeClient = Callable[..., RedisCluster]


@pytest.fixture
async def make_client(cluster: RedisClusterProcesses) -> AsyncIterator[MakeClient]:
    """Clients as the daemon makes them (`connect_redis`), closed after the test. The
    cluster is flushed first (a killed node from an earlier test is restarted)."""
    for node in cluster.nodes:
        if not node.running:
            cluster.restart(node)
    cluster.flushall()
    made: list[RedisCluster] = []

    def make(**kw: Any) -> RedisCluster:
        kw.setdefault("socket_timeout", 2.0)
        client = connect_redis(cluster.url, cluster=False, **kw)
        assert isinstance(client, RedisCluster)
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.aclose()


@pytest.fixture
def cluster_client(make_client: MakeClient) -> RedisCluster:
    return make_client()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def sites_on_distinct_masters(cluster: RedisClusterProcesses, count: int,
                              key_of: Callable[[str], str]) -> list[str]:
    """`count` site names (site1, site2, ...) whose keys live on different masters."""
    chosen: list[str] = []
    ports: set[int] = set()
    for i in range(1, 200):
        name = f"site{i}"
        port = cluster.node_for_key(key_of(name)).port
        if port not in ports:
            chosen.append(name)
            ports.add(port)
            if len(chosen) == count:
                return chosen
    raise LookupError("no site names found on distinct masters")

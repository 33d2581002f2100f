"""A master of a cluster with replicas dies for good: its replica takes over the slots
and the calls held there are still released exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio.cluster import RedisCluster

from gateway.redis_connect import connect_redis
from limits import CallRequest, Direction, EmergencyNumbers, LimitsService, Reason, SiteKeys
from tests.scaleout.conftest import Clock
from tests.support.redis_cluster import RedisClusterProcesses, redis_cluster


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    with redis_cluster(tmp_path_factory.mktemp("replicated"), replicas=1) as c:
        yield c


@pytest.fixture
async def client(replicated: RedisClusterProcesses) -> AsyncIterator[RedisCluster]:
    c = connect_redis(replicated.url, cluster=False, socket_timeout=1.0)
    assert isinstance(c, RedisCluster)
    try:
        yield c
    finally:
        await c.aclose()


async def test_calls_held_on_a_failed_master_are_released_on_its_promoted_replica(
    replicated: RedisClusterProcesses, client: RedisCluster,
) -> None:
    svc = LimitsService(client, "site1", emergency=EmergencyNumbers(("112",)), clock=Clock())
    await svc.settings.set_tenant_limit("acme", "total", 5)
    held = [await svc.authorize(CallRequest("acme", Direction.OUT, call_id=f"c{i}"))
            for i in range(5)]
    assert all(d.allowed for d in held)
    replicated.wait_synced()  # WAIT: what the gateway was told is on the replica too

    old_master = replicated.node_for_key(SiteKeys("site1").used)
    promoted = replicated.fail_over(old_master)
    assert replicated.node_for_key(SiteKeys("site1").used) is promoted

    # the limit still holds (the counters moved with the slots) ...
    refused = await svc.authorize(CallRequest("acme", Direction.OUT))
    assert refused.reason is Reason.TENANT_LIMIT
    # ... and each held call is freed exactly once, by scripts the new master never saw
    assert [await svc.release(d.lease_id, by="hangup") for d in held] == [True] * 5
    assert [await svc.release(d.lease_id, by="hangup") for d in held] == [False] * 5
    assert await svc.in_use() == {}
    assert (await svc.authorize(CallRequest("acme", Direction.OUT))).allowed

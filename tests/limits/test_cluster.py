"""The same scripts on Redis Cluster: every key of a site shares the `{site:NAME}` hash tag."""

from __future__ import annotations

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from limits import LimitsService, Reason, SiteKeys
from tests.limits.conftest import EMERGENCY, FakeClock, in_call, out_call


def test_every_key_of_a_site_is_in_one_slot() -> None:
    keys = SiteKeys("paris-1")
    names = [keys.config, keys.bucket, keys.used, keys.surcharged, keys.deadlines,
             keys.released, keys.holdings, keys.failopen, keys.lease("abc123")]
    assert len({key_slot(k.encode()) for k in names}) == 1
    assert key_slot(SiteKeys("berlin").used.encode()) != key_slot(keys.used.encode())


async def test_authorize_release_and_reconcile_run_on_a_cluster(
    cluster_port: int, clock: FakeClock,
) -> None:
    client = RedisCluster(host="127.0.0.1", port=cluster_port)
    try:
        service = LimitsService(client, "paris-1", emergency=EMERGENCY, clock=clock)
        await service.load_scripts()
        s = service.settings
        await s.set_reseller("shop", "resel")
        await s.set_tenant_limit("resel", "total", 2)
        await s.set_trunk_limit("pri1", 23, cps=5)
        await s.set_device_limit("shop", "desk", 4)
        call = dict(trunk="pri1", device="desk", number="+331", pools=("seat",))
        a = await service.authorize(out_call("shop", **call))
        b = await service.authorize(in_call("shop", **call))
        refused = await service.authorize(out_call("shop", **call))
        assert a.allowed and b.allowed and refused.reason is Reason.TENANT_LIMIT
        assert (await service.authorize(out_call("shop", dest="112", **call))).emergency
        assert (await s.show_tenant("resel")).total.in_use == 3
        assert [x.name for x in await s.list_scopes("trunk")] == ["pri1"]
        assert (await service.renew([a.lease_id])).renewed == (a.lease_id,)
        clock.advance(60)
        report = await service.reconcile({a.lease_id, b.lease_id})
        assert len(report.freed) == 1 and report.fixed_counters == ()
        assert await service.release(a.lease_id, by="hangup")
        assert not await service.release(a.lease_id, by="release_hook")
        clock.advance(service.lease_ttl + 1)
        assert [x.lease_id for x in await service.expire_due()] == [b.lease_id]
        assert await service.in_use() == {}
    finally:
        await client.aclose()

"""limits/ on a real 3-master Redis Cluster: every operation, exact counting under
concurrency, sites on different masters, and a master crashing under held calls."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from redis.asyncio.cluster import RedisCluster

from limits import (
    BackendPolicy,
    CallRequest,
    Direction,
    EmergencyNumbers,
    LimitsService,
    Reason,
    ScopeKind,
    SiteKeys,
)
from tests.scaleout.conftest import Clock, MakeClient, ScriptLedger, sites_on_distinct_masters
from tests.support.redis_cluster import RedisClusterProcesses

EMERGENCY = EmergencyNumbers(("112", "911"))
LIMIT_SCRIPTS = {"limits/acquire.lua", "limits/release.lua", "limits/renew.lua",
                 "limits/recount.lua"}


def service(client: RedisCluster, site: str, clock: Clock, **kw: Any) -> LimitsService:
    kw.setdefault("lease_ttl", 30.0)
    return LimitsService(client, site, emergency=EMERGENCY, clock=clock, **kw)


def out_call(tenant: str = "acme", **kw: Any) -> CallRequest:
    kw.setdefault("dest", "4930123456")
    return CallRequest(tenant, Direction.OUT, **kw)


async def counters_match_leases(svc: LimitsService) -> dict[str, int]:
    """Invariant 1: every counter equals the number of leases holding its scope."""
    expected: Counter[str] = Counter()
    for lease in await svc.leases():
        expected.update(lease.scopes)
    actual = await svc.in_use()
    assert actual == dict(expected)
    return actual


async def test_every_limits_operation_works_on_the_cluster(
    cluster_client: RedisCluster, clock: Clock,
) -> None:
    ledger = ScriptLedger()
    ledger.watch(cluster_client)
    svc = service(cluster_client, "site1", clock)
    s = svc.settings
    # settings: the first command of a fresh client is a MULTI/EXEC pipeline here
    await s.set_tenant_limit("acme", "total", 3, hard_max=4)
    await svc.load_scripts()
    await s.set_tenant_policy("acme", "surcharge")
    await s.set_tenant_limit("resell", "outbound", 10)
    await s.set_reseller("acme", "resell")
    await s.set_trunk_limit("pri1", 30, cps=50)
    await s.set_number_limit("acme", "+4930555", 5)
    await s.set_device_limit("acme", "desk-7", 3)
    await s.set_pool_size("acme", "seat", 8)
    assert (await s.show(ScopeKind.TRUNK, "pri1")).limit == 30
    tenant = await s.show_tenant("acme")
    assert (tenant.reseller, tenant.total.limit, tenant.total.hard_max) == ("resell", 3, 4)
    assert [x.name for x in await s.list_scopes(ScopeKind.NUMBER, tenant="acme")] == [
        "+4930555"]

    req = out_call(trunk="pri1", number="+4930555", device="desk-7", pools=("seat",),
                   call_id="c1", origin="ast-1")
    first = [await svc.authorize(req) for _ in range(3)]
    assert all(d.allowed and d.reason is Reason.OK for d in first)
    fourth = await svc.authorize(out_call(trunk="pri1"))
    assert fourth.reason is Reason.SURCHARGE
    assert (await svc.authorize(out_call())).reason is Reason.TENANT_LIMIT
    emergency = await svc.authorize(out_call(dest="112"))
    assert emergency.allowed and emergency.emergency
    in_use = await counters_match_leases(svc)
    assert in_use["tenant/acme/total"] == 5 and in_use["tenant/resell/outbound"] == 5
    assert (await s.show_scope("device/acme/desk-7")).in_use == 3

    lease = await svc.lease(first[0].lease_id, tenant="acme")
    assert lease is not None and lease.call_id == "c1" and lease.origin == "ast-1"
    assert len(await svc.leases(tenant="acme")) == 5

    report = await svc.renew([d.lease_id for d in first] + ["gone-lease"])
    assert set(report.renewed) == {d.lease_id for d in first} and report.gone == ("gone-lease",)
    assert await svc.release(first[0].lease_id, by="hangup")
    assert not await svc.release(first[0].lease_id, by="release_hook")  # exactly once

    clock.advance(20)
    await svc.renew([first[1].lease_id])
    clock.advance(15)  # all but first[1] are past their deadline
    expired = await svc.expire_due(batch=2)
    assert {x.lease_id for x in expired} == {first[2].lease_id, fourth.lease_id,
                                             emergency.lease_id}

    # reconcile: first[1] is up; a lost call is counted again; a new unleased call counted
    lost = out_call(trunk="pri1", call_id="c9", origin="ast-1")
    rec = await svc.reconcile({first[1].lease_id: req, "lostlease1": lost},
                              unleased=[out_call(call_id="c10")])
    assert rec.restored == ("lostlease1",) and len(rec.counted) == 1
    in_use = await counters_match_leases(svc)
    assert in_use["tenant/acme/total"] == 3

    assert LIMIT_SCRIPTS <= ledger.exercised
    assert ledger.cross_slot() == {}
    node = {cluster_client.keyslot(k) for k in (svc.keys.used, svc.keys.lease("x"))}
    assert len(node) == 1


async def test_exactly_the_limit_of_many_concurrent_calls_wins(
    make_client: MakeClient, clock: Clock,
) -> None:
    gateways = [service(make_client(), "site1", clock) for _ in range(2)]
    await gateways[0].settings.set_tenant_limit("acme", "total", 20)
    decisions = await asyncio.gather(*(
        gateways[i % 2].authorize(out_call(trunk="pri1", call_id=f"c{i}"))
        for i in range(200)
    ))
    reasons = Counter(d.reason for d in decisions)
    # no backend_unavailable: 200 calls in flight on one node must queue, not fail
    assert reasons == {Reason.OK: 20, Reason.TENANT_LIMIT: 180}
    assert (await gateways[1].in_use())["tenant/acme/total"] == 20
    winners = [d.lease_id for d in decisions if d.allowed]
    freed = await asyncio.gather(*(
        gateways[k].release(lease_id, by=by)
        for lease_id in winners for k, by in ((0, "hangup"), (1, "release_hook"))
    ))
    assert sum(freed) == 20
    assert await gateways[0].in_use() == {}


async def test_two_sites_live_on_different_masters_and_count_apart(
    cluster: RedisClusterProcesses, cluster_client: RedisCluster, clock: Clock,
) -> None:
    a, b = sites_on_distinct_masters(cluster, 2, lambda s: SiteKeys(s).used)
    assert cluster.node_for_key(SiteKeys(a).used) is not cluster.node_for_key(SiteKeys(b).used)
    sa, sb = service(cluster_client, a, clock), service(cluster_client, b, clock)
    await sa.settings.set_tenant_limit("acme", "total", 3)
    await sb.settings.set_tenant_limit("acme", "total", 5)
    da, db = await asyncio.gather(
        asyncio.gather(*(sa.authorize(out_call()) for _ in range(10))),
        asyncio.gather(*(sb.authorize(out_call()) for _ in range(10))),
    )
    assert sum(d.allowed for d in da) == 3 and sum(d.allowed for d in db) == 5
    assert (await sa.in_use())["tenant/acme/total"] == 3
    assert (await sb.in_use())["tenant/acme/total"] == 5
    # a lease of one site is unknown to the other
    assert not await sb.release(next(d.lease_id for d in da if d.allowed), by="hangup")


async def test_a_site_master_crash_refuses_that_site_only_and_loses_no_call(
    cluster: RedisClusterProcesses, make_client: MakeClient, clock: Clock,
) -> None:
    a, b = sites_on_distinct_masters(cluster, 2, lambda s: SiteKeys(s).used)
    client = make_client(socket_timeout=1.0)
    sa = service(client, a, clock)
    sa_open = service(client, a, clock, backend_policy=BackendPolicy.FAIL_OPEN)
    sb = service(client, b, clock)
    held = [await sa.authorize(out_call(call_id=f"c{i}")) for i in range(5)]
    assert all(d.allowed for d in held)

    master = cluster.node_for_key(SiteKeys(a).used)
    cluster.kill(master)
    cluster.wait_seen_failed(master)
    down = await sa.authorize(out_call())
    assert (down.allowed, down.reason) == (False, Reason.BACKEND_UNAVAILABLE)
    emergency = await sa.authorize(out_call(dest="911"))
    assert emergency.allowed and emergency.journaled
    granted = await sa_open.authorize(out_call(call_id="offline"))
    assert granted.allowed and granted.journaled
    assert (await sb.authorize(out_call())).allowed  # the other master serves site b

    cluster.restart(master)  # same port and AOF: held leases survive, script cache is empty
    # the client must learn the layout again; its first command here is a MULTI/EXEC
    await sa.settings.set_tenant_limit("acme", "total", 50)
    # EVALSHA -> NOSCRIPT -> reload; the emergency grant is written back first
    assert await sa.release(held[0].lease_id, by="hangup")
    assert not sa.journal
    assert await sa_open.flush_journal() == 1
    leases = {x.lease_id: x for x in await sa.leases()}
    assert set(leases) == {d.lease_id for d in held[1:]} | {emergency.lease_id,
                                                            granted.lease_id}
    assert "fail_open" in leases[granted.lease_id].flags
    assert (await counters_match_leases(sa))["tenant/acme/total"] == 6

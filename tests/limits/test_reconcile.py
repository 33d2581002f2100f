"""Reconciliation: counters rebuilt from the calls really up (the lead feeds it the
CALLGATE_LEASE values of live channels)."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from limits import CallRequest, LimitsService, Reason
from tests.limits.conftest import (
    FakeClock,
    MakeService,
    Pooled,
    assert_counters_exact,
    out_call,
    used,
)


async def test_leases_with_no_live_call_are_freed(service: LimitsService,
                                                  clock: FakeClock) -> None:
    await service.settings.set_tenant_limit("acme", "total", 3)
    live = [(await service.authorize(out_call())).lease_id for _ in range(2)]
    leaked = (await service.authorize(out_call(call_id="gone-1"))).lease_id
    assert (await service.authorize(out_call())).reason is Reason.TENANT_LIMIT
    clock.advance(10)
    with capture_logs() as logs:
        report = await service.reconcile(set(live))
    assert [x.lease_id for x in report.freed] == [leaked]
    assert report.renewed == 2 and report.fixed
    assert [e["event"] for e in logs] == ["reconcile_fixed"]
    assert logs[0]["freed"] == [leaked]
    assert (await used(service))["tenant/acme/total"] == 2
    assert (await service.authorize(out_call())).allowed
    # a second pass finds nothing to fix
    assert not (await service.reconcile(set(live) | {
        x.lease_id for x in await service.leases()})).fixed


async def test_young_leases_and_other_servers_leases_are_left_alone(
    service: LimitsService, clock: FakeClock,
) -> None:
    other_server = (await service.authorize(out_call(origin="ast-2"))).lease_id
    clock.advance(60)
    snapshot_at = clock.now
    clock.advance(1)
    young = (await service.authorize(out_call(origin="ast-1"))).lease_id  # after the snapshot
    report = await service.reconcile(set(), origins={"ast-1"}, as_of=snapshot_at)
    assert report.freed == () and report.skipped_young == 1
    assert {x.lease_id for x in await service.leases()} == {other_server, young}
    clock.advance(60)
    report = await service.reconcile(set(), origins={"ast-1"})
    assert [x.lease_id for x in report.freed] == [young]


async def test_live_calls_whose_lease_is_gone_are_counted_again(
    service: LimitsService, clock: FakeClock,
) -> None:
    await service.settings.set_trunk_limit("pri1", 2)
    req = out_call(trunk="pri1", call_id="c-7", origin="ast-1")
    d = await service.authorize(req)
    clock.advance(service.lease_ttl + 1)
    await service.expire_due()  # e.g. Redis was away longer than the lease TTL
    await service.authorize(out_call(trunk="pri1"))
    report = await service.reconcile({d.lease_id: req, "lost-no-request": None})
    assert report.restored == (d.lease_id,)
    assert report.unrecoverable == ("lost-no-request",)
    lease = await service.lease(d.lease_id)
    assert lease is not None and "recounted" in lease.flags
    assert (await used(service))["trunk/pri1"] == 2  # may exceed a limit: the call is up
    assert (await service.authorize(out_call(trunk="pri1"))).reason is Reason.TRUNK_FULL
    assert await service.release(d.lease_id, by="hangup")  # the channel's lease id still works


async def test_a_call_that_hung_up_during_the_snapshot_is_not_counted_again(
    service: LimitsService,
) -> None:
    req = out_call()
    d = await service.authorize(req)
    snapshot = {d.lease_id: req}  # read from the channels ...
    await service.release(d.lease_id, by="hangup")  # ... then the call ends
    report = await service.reconcile(snapshot)
    assert report.already_released == (d.lease_id,) and report.restored == ()
    assert await used(service) == {}


async def test_live_calls_without_a_lease_get_one(service: LimitsService) -> None:
    calls = [out_call(call_id="u-1", trunk="pri1"), out_call("globex", call_id="u-2")]
    report = await service.reconcile(set(), unleased=calls)
    assert [call_id for call_id, _ in report.counted] == ["u-1", "u-2"]
    leases = {x.lease_id: x for x in await service.leases()}
    assert set(leases) == {lease_id for _, lease_id in report.counted}
    assert all("recounted" in x.flags for x in leases.values())
    assert (await used(service))["trunk/pri1"] == 1
    await assert_counters_exact(service)


async def test_counters_that_drift_from_their_leases_are_corrected(
    service: LimitsService, redis_client: object,
) -> None:
    await service.settings.set_tenant_policy("acme", "surcharge")
    await service.settings.set_tenant_limit("acme", "total", 0, hard_max=5)
    leases = [(await service.authorize(out_call(trunk="t1"))).lease_id for _ in range(3)]
    r = service._redis
    await r.hincrby(service.keys.used, "trunk/t1", 4)  # drift up
    await r.hset(service.keys.used, "tenant/acme/outbound", 1)  # drift down
    await r.hset(service.keys.used, "device/acme/ghost", 2)  # no lease at all
    await r.hset(service.keys.surcharged, "tenant/acme", 9)
    await r.zadd(service.keys.deadlines, {"dangling": 1})  # a deadline with no lease
    await r.hset(service.keys.holdings, "orphan", "pool/acme/p|")  # a lease with no deadline
    report = await service.reconcile(set(leases))
    fixes = {(f.counter, f.scope): (f.was, f.now) for f in report.fixed_counters}
    assert fixes == {
        ("used", "trunk/t1"): (7, 3),
        ("used", "tenant/acme/outbound"): (1, 3),
        ("used", "device/acme/ghost"): (2, 0),
        ("surcharged", "tenant/acme"): (9, 3),
        ("dangling", "dangling"): (1, 0),
        ("no_deadline", "orphan"): (0, 1),
        ("used", "pool/acme/p"): (0, 1),
    }
    assert (await service.settings.show_tenant("acme")).surcharged == 3
    # the orphan is due now: the sweeper frees what it holds
    assert [x.lease_id for x in await service.expire_due()] == ["orphan"]
    await assert_counters_exact(service)
    assert "pool/acme/p" not in await used(service)


async def test_reconcile_accepts_a_plain_list_and_skips_garbage(service: LimitsService) -> None:
    d = await service.authorize(out_call())
    report = await service.reconcile([d.lease_id, "", "not a lease id"])
    assert not report.fixed and report.renewed == 1


async def test_restored_request_from_another_tenant_stays_in_that_tenant(
    service: LimitsService,
) -> None:
    req = CallRequest("globex", "in", number="+4930999")  # type: ignore[arg-type]
    report = await service.reconcile({"lease-x": req})
    assert report.restored == ("lease-x",)
    assert await service.lease("lease-x", tenant="acme") is None
    assert (await service.settings.show("number", "+4930999", tenant="globex")).in_use == 1


async def test_reconcile_during_traffic_corrects_nothing_that_was_right(
    pooled: Pooled, make_service: MakeService,
) -> None:
    gateway, reconciler = make_service(pooled()), make_service(pooled())
    stop = asyncio.Event()
    held: set[str] = set()

    async def traffic(k: int) -> None:
        while not stop.is_set():
            d = await gateway.authorize(out_call(trunk="t1", call_id=f"c{k}"))
            held.add(d.lease_id)
            await asyncio.sleep(0)
            if await gateway.release(d.lease_id, by="hangup"):
                held.discard(d.lease_id)

    workers = [asyncio.create_task(traffic(k)) for k in range(20)]
    try:
        reports = []
        for _ in range(10):
            # every lease in Redis counts as live: nothing may be freed or corrected
            reports.append(await reconciler.reconcile(
                {x.lease_id for x in await reconciler.leases()} | set(held)))
    finally:
        stop.set()
        await asyncio.gather(*workers)
    assert all(r.fixed_counters == () and r.freed == () for r in reports)
    assert await used(gateway) == {}

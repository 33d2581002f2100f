"""Leases: renewed while the call is up, freed by the sweeper when a gateway stops renewing."""

from __future__ import annotations

from structlog.testing import capture_logs

from limits import LimitsService, Reason
from tests.limits.conftest import FakeClock, MakeService, assert_counters_exact, out_call, used


async def test_expiry_frees_the_slots_of_a_crashed_gateway(
    make_service: MakeService, clock: FakeClock,
) -> None:
    crashed, survivor = make_service(), make_service()
    await survivor.settings.set_trunk_limit("pri1", 2)
    lost = [(await crashed.authorize(out_call(trunk="pri1", call_id=f"c{i}"))).lease_id
            for i in range(2)]
    assert (await survivor.authorize(out_call(trunk="pri1"))).reason is Reason.TRUNK_FULL
    assert await survivor.expire_due() == []  # not due yet
    clock.advance(survivor.lease_ttl + 0.001)
    with capture_logs() as logs:
        expired = await survivor.expire_due()
    assert sorted(x.lease_id for x in expired) == sorted(lost)
    assert [e["event"] for e in logs] == ["lease_expired", "lease_expired"]
    assert {e["call_id"] for e in logs} == {"c0", "c1"}
    assert await used(survivor) == {}
    assert (await survivor.authorize(out_call(trunk="pri1"))).allowed
    # the crashed gateway's late hangups are no-ops
    assert not await crashed.release(lost[0], by="hangup")


async def test_renewal_keeps_a_live_call_however_long_it_lasts(
    service: LimitsService, make_service: MakeService, clock: FakeClock,
) -> None:
    sweeper = make_service()
    d = await service.authorize(out_call(trunk="pri1"))
    for _ in range(20):  # ten lease lifetimes
        clock.advance(service.lease_ttl / 2)
        report = await service.renew([d.lease_id])
        assert report.renewed == (d.lease_id,) and report.gone == ()
        assert await sweeper.expire_due() == []
    lease = await service.lease(d.lease_id)
    assert lease is not None and lease.deadline == clock.now + service.lease_ttl
    assert (await used(service))["trunk/pri1"] == 1


async def test_overdue_lease_not_yet_swept_is_still_renewed(
    service: LimitsService, clock: FakeClock,
) -> None:
    d = await service.authorize(out_call())
    clock.advance(service.lease_ttl * 3)  # the sweeper did not run meanwhile
    assert (await service.renew([d.lease_id])).renewed == (d.lease_id,)
    assert await service.expire_due() == []
    await assert_counters_exact(service)


async def test_renewal_of_a_freed_lease_reports_it_gone_and_counts_nothing(
    service: LimitsService, clock: FakeClock,
) -> None:
    a = await service.authorize(out_call())
    b = await service.authorize(out_call())
    await service.release(a.lease_id, by="hangup")
    clock.advance(service.lease_ttl + 1)
    report = await service.renew([b.lease_id, a.lease_id, "bogus id!"])
    assert report.renewed == (b.lease_id,)
    assert set(report.gone) == {a.lease_id, "bogus id!"}
    assert await service.lease(a.lease_id) is None
    assert (await used(service)) == {"tenant/acme/outbound": 1, "tenant/acme/total": 1}


async def test_a_renewal_never_shortens_a_lease(make_service: MakeService,
                                                clock: FakeClock) -> None:
    long_ttl = make_service(lease_ttl=120.0)
    short_ttl = make_service(lease_ttl=10.0)
    d = await long_ttl.authorize(out_call())
    await short_ttl.renew([d.lease_id])
    lease = await long_ttl.lease(d.lease_id)
    assert lease is not None and lease.deadline == clock.now + 120.0


async def test_lease_records_what_the_call_holds(service: LimitsService) -> None:
    d = await service.authorize(out_call(trunk="pri1", device="d1", call_id="1700000000.42",
                                         origin="ast-1"))
    lease = await service.lease(d.lease_id)
    assert lease is not None
    assert (lease.tenant, lease.call_id, lease.origin, lease.status) == (
        "acme", "1700000000.42", "ast-1", "ok")
    assert set(lease.scopes) == set(d.held) == {
        "device/acme/d1", "tenant/acme/outbound", "tenant/acme/total", "trunk/pri1"}

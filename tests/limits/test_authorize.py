"""What a call gets from authorize, scope by scope, against a real Redis."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from limits import (
    CAUSES,
    CallRequest,
    Direction,
    InvalidLimit,
    InvalidName,
    InvalidRequest,
    LimitsService,
    Reason,
    Result,
    ScopeKind,
)
from tests.limits.conftest import (
    FakeClock,
    MakeService,
    assert_counters_exact,
    in_call,
    out_call,
    used,
)


async def test_three_calls_on_outbound_two_gives_two_allow_one_tenant_limit(
    service: LimitsService,
) -> None:
    await service.settings.set_tenant_limit("acme", "outbound", 2)
    decisions = await asyncio.gather(*(service.authorize(out_call()) for _ in range(3)))
    allowed = [d for d in decisions if d.allowed]
    denied = [d for d in decisions if not d.allowed]
    assert len(allowed) == 2 and len(denied) == 1
    assert (denied[0].result, denied[0].reason, denied[0].cause) == (
        Result.DENY, Reason.TENANT_LIMIT, 34)
    assert denied[0].lease_id == ""
    assert denied[0].channel_vars() == {
        "CALLGATE_RESULT": "DENY", "CALLGATE_REASON": "tenant_limit", "CALLGATE_CAUSE": "34",
        "CALLGATE_LEASE": "", "CALLGATE_MAXSEC": "0"}
    assert all(d.reason is Reason.OK and d.lease_id and d.maxsec == 0 for d in allowed)
    assert (await service.authorize(in_call())).allowed  # inbound is another counter


SCOPE_CASES = [
    ("tenant/acme/total", {}, Reason.TENANT_LIMIT, 34),
    ("tenant/acme/inbound", {}, Reason.TENANT_LIMIT, 34),
    ("trunk/pri1", {"trunk": "pri1"}, Reason.TRUNK_FULL, 34),
    ("number/acme/+4930555", {"number": "+4930555"}, Reason.NUMBER_FULL, 17),
    ("device/acme/desk-7", {"device": "desk-7"}, Reason.DEVICE_BUSY, 17),
    ("pool/acme/dialer_seat", {"pools": ("dialer_seat",)}, Reason.LICENSE_POOL_EMPTY, 34),
]


async def _limit(service: LimitsService, scope: str, value: int | None) -> None:
    s = service.settings
    kind, *rest = scope.split("/")
    if kind == "tenant":
        await s.set_tenant_limit(rest[0], rest[1], value)
    elif kind == "trunk":
        await s.set_trunk_limit(rest[0], value)
    elif kind == "number":
        await s.set_number_limit(rest[0], rest[1], value)
    elif kind == "device":
        await s.set_device_limit(rest[0], rest[1], value)
    else:
        await s.set_pool_size(rest[0], rest[1], value)


@pytest.mark.parametrize(("scope", "kw", "reason", "cause"), SCOPE_CASES)
async def test_each_scope_kind_refuses_with_its_reason_and_cause(
    service: LimitsService, scope: str, kw: dict[str, object], reason: Reason, cause: int,
) -> None:
    await _limit(service, scope, 1)
    first = await service.authorize(in_call(**kw))
    second = await service.authorize(in_call(**kw))
    assert first.allowed and scope in first.held
    assert (second.result, second.reason, second.cause, second.refused_scope) == (
        Result.DENY, reason, cause, scope)
    assert CAUSES[reason] == cause
    status = await service.settings.show_scope(scope)
    assert (status.limit, status.in_use) == (1, 1)
    await assert_counters_exact(service)
    assert await service.release(first.lease_id, by="test")
    assert (await service.authorize(in_call(**kw))).allowed


async def test_a_refused_call_holds_nothing(service: LimitsService) -> None:
    """All or nothing: the device is full, so tenant, trunk, number and pool stay as they were."""
    await service.settings.set_device_limit("acme", "desk-7", 1)
    full = dict(trunk="pri1", number="+4930555", device="desk-7", pools=("dialer_seat",))
    assert (await service.authorize(out_call(**full))).allowed
    before = await used(service)
    refused = await service.authorize(out_call(**full))
    assert refused.reason is Reason.DEVICE_BUSY
    assert await used(service) == before
    # the same happens when the last scope checked (the trunk) is the full one
    await service.settings.set_device_limit("acme", "desk-7", None)
    await service.settings.set_trunk_limit("pri1", 1)
    refused = await service.authorize(out_call(**full))
    assert refused.reason is Reason.TRUNK_FULL
    assert await used(service) == before


async def test_scopes_without_limit_are_counted_but_unlimited(service: LimitsService) -> None:
    kw = dict(trunk="fxo", number="+4930111", device="desk-1", pools=("rec",))
    decisions = [await service.authorize(out_call(**kw)) for _ in range(25)]
    assert all(d.allowed for d in decisions)
    for scope in ("tenant/acme/outbound", "tenant/acme/total", "trunk/fxo",
                  "number/acme/+4930111", "device/acme/desk-1", "pool/acme/rec"):
        status = await service.settings.show_scope(scope)
        assert (status.limit, status.in_use) == (None, 25)


async def test_release_is_idempotent_and_counters_return_to_zero(service: LimitsService) -> None:
    await service.settings.set_tenant_limit("acme", "total", 1)
    d = await service.authorize(out_call(trunk="t1"))
    results = await asyncio.gather(
        service.release(d.lease_id, by="hangup"),
        service.release(d.lease_id, by="release_hook"),
        service.release(d.lease_id, by="reconcile"),
    )
    assert sorted(results) == [False, False, True]
    assert await used(service) == {}
    assert not await service.release(d.lease_id, by="hangup")
    assert not await service.release("", by="release_hook")  # h extension of a refused call
    assert not await service.release("no such lease; DEL *", by="release_hook")
    assert (await service.authorize(out_call())).allowed


async def test_reseller_counts_calls_of_its_sub_tenants(service: LimitsService) -> None:
    s = service.settings
    await s.set_reseller("shop-a", "resel")
    await s.set_reseller("shop-b", "resel")
    await s.set_tenant_limit("resel", "outbound", 3)
    await s.set_tenant_limit("shop-a", "outbound", 5)
    a1 = await service.authorize(out_call("shop-a"))
    assert {"tenant/shop-a/outbound", "tenant/shop-a/total", "tenant/resel/outbound",
            "tenant/resel/total"} <= set(a1.held)
    assert (await service.authorize(out_call("shop-a"))).allowed
    assert (await service.authorize(out_call("shop-b"))).allowed
    refused = await service.authorize(out_call("shop-b"))
    assert (refused.reason, refused.refused_scope) == (Reason.TENANT_LIMIT, "tenant/resel/outbound")
    assert (await s.show(ScopeKind.TENANT_OUTBOUND, "resel")).in_use == 3
    assert (await s.show(ScopeKind.TENANT_OUTBOUND, "shop-a")).in_use == 2
    assert (await s.show(ScopeKind.TENANT_OUTBOUND, "shop-b")).in_use == 1
    status = await s.show_tenant("shop-a")
    assert status.reseller == "resel"
    await service.release(a1.lease_id, by="hangup")
    assert (await s.show(ScopeKind.TENANT_OUTBOUND, "resel")).in_use == 2
    assert (await service.authorize(out_call("shop-b"))).allowed


async def test_reseller_chain_may_not_loop(service: LimitsService) -> None:
    await service.settings.set_reseller("a", "b")
    await service.settings.set_reseller("b", "c")
    with pytest.raises(InvalidLimit, match="loop"):
        await service.settings.set_reseller("c", "a")


async def test_emergency_at_the_limit_is_allowed_and_counted(service: LimitsService) -> None:
    await service.settings.set_tenant_limit("acme", "outbound", 1)
    await service.settings.set_trunk_limit("pri1", 1, cps=1)
    assert (await service.authorize(out_call(trunk="pri1"))).allowed
    assert (await service.authorize(out_call(trunk="pri1"))).reason is Reason.TENANT_LIMIT
    with capture_logs() as logs:
        e = await service.authorize(out_call(trunk="pri1", dest="+44 999", call_id="c-911"))
    assert (e.result, e.reason, e.cause, e.emergency, e.never_charge) == (
        Result.ALLOW, Reason.EMERGENCY, 0, True, True)
    assert not e.surcharge
    assert (await service.settings.show(ScopeKind.TENANT_OUTBOUND, "acme")).in_use == 2
    assert (await service.settings.show(ScopeKind.TRUNK, "pri1")).in_use == 2
    assert [entry["event"] for entry in logs] == ["limit_emergency"]
    assert logs[0]["call_id"] == "c-911" and logs[0]["dest"] == "+44 999"
    lease = await service.lease(e.lease_id)
    assert lease is not None and lease.status == "emergency"
    assert await service.release(e.lease_id, by="hangup")
    assert (await service.settings.show(ScopeKind.TENANT_OUTBOUND, "acme")).in_use == 1


async def test_surcharge_up_to_the_hard_maximum_then_refuse(service: LimitsService) -> None:
    s = service.settings
    await s.set_tenant_policy("acme", "surcharge")
    await s.set_tenant_limit("acme", "total", 2, hard_max=4)
    decisions = [await service.authorize(out_call()) for _ in range(5)]
    assert [d.reason for d in decisions] == [Reason.OK, Reason.OK, Reason.SURCHARGE,
                                             Reason.SURCHARGE, Reason.TENANT_LIMIT]
    assert [d.surcharge for d in decisions] == [False, False, True, True, False]
    assert decisions[2].allowed and decisions[2].cause == 0
    lease = await service.lease(decisions[2].lease_id)
    assert lease is not None and lease.status == "surcharge"
    status = await s.show_tenant("acme")
    assert (status.total.limit, status.total.hard_max, status.total.in_use) == (2, 4, 4)
    assert (status.total.surcharged, status.surcharged) == (2, 2)
    await service.release(decisions[2].lease_id, by="hangup")
    assert (await s.show_tenant("acme")).surcharged == 1
    # under refuse the hard maximum is ignored
    await s.set_tenant_policy("acme", "refuse")
    assert (await service.authorize(out_call())).reason is Reason.TENANT_LIMIT
    with pytest.raises(InvalidLimit):
        await s.set_tenant_limit("acme", "total", 5, hard_max=4)


async def test_surcharge_logs_its_own_event(service: LimitsService) -> None:
    await service.settings.set_tenant_policy("acme", "surcharge")
    await service.settings.set_tenant_limit("acme", "outbound", 0, hard_max=1)
    with capture_logs() as logs:
        d = await service.authorize(out_call(call_id="c1"))
    assert d.reason is Reason.SURCHARGE
    assert logs[0]["event"] == "limit_surcharge"
    assert logs[0]["surcharged"] == ["tenant/acme/outbound", "tenant/acme"]


async def test_lowering_a_limit_below_use_cuts_no_call(service: LimitsService) -> None:
    s = service.settings
    await s.set_tenant_limit("acme", "total", 5)
    leases = [(await service.authorize(out_call())).lease_id for _ in range(5)]
    await s.set_tenant_limit("acme", "total", 2)
    assert len(await service.leases(tenant="acme")) == 5
    assert (await s.show(ScopeKind.TENANT_TOTAL, "acme")).in_use == 5
    for lease_id in leases[:3]:
        assert (await service.authorize(out_call())).reason is Reason.TENANT_LIMIT
        assert await service.release(lease_id, by="hangup")
    assert (await service.authorize(out_call())).reason is Reason.TENANT_LIMIT  # 2 in use, 2 max
    await service.release(leases[3], by="hangup")
    assert (await service.authorize(out_call())).allowed
    await s.set_tenant_limit("acme", "total", None)  # unlimited again
    assert all([(await service.authorize(out_call())).allowed for _ in range(10)])


async def test_calls_per_second_bucket(service: LimitsService, clock: FakeClock) -> None:
    await service.settings.set_trunk_limit("gsm", None, cps=2)
    got = [(await service.authorize(out_call(trunk="gsm"))).reason for _ in range(3)]
    assert got == [Reason.OK, Reason.OK, Reason.TRUNK_FULL]
    clock.advance(0.5)  # one token back
    got = [(await service.authorize(out_call(trunk="gsm"))).reason for _ in range(2)]
    assert got == [Reason.OK, Reason.TRUNK_FULL]
    clock.advance(10)  # the bucket holds one second of calls, no more
    got = [(await service.authorize(out_call(trunk="gsm"))).reason for _ in range(3)]
    assert got == [Reason.OK, Reason.OK, Reason.TRUNK_FULL]
    assert (await service.settings.show(ScopeKind.TRUNK, "gsm")).cps == 2.0
    # a call refused by another scope takes no token
    await service.settings.set_tenant_limit("other", "outbound", 0)
    clock.advance(1)
    assert (await service.authorize(out_call("other", trunk="gsm"))).reason is Reason.TENANT_LIMIT
    got = [(await service.authorize(out_call(trunk="gsm"))).reason for _ in range(3)]
    assert got == [Reason.OK, Reason.OK, Reason.TRUNK_FULL]


async def test_limit_change_applies_to_the_next_call_on_every_gateway(
    make_service: object, service: LimitsService,
) -> None:
    other = make_service()  # type: ignore[operator]
    await service.settings.set_trunk_limit("pri1", 1)
    assert (await other.authorize(out_call(trunk="pri1"))).allowed
    assert (await service.authorize(out_call(trunk="pri1"))).reason is Reason.TRUNK_FULL
    await other.settings.set_trunk_limit("pri1", 23)
    assert (await service.authorize(out_call(trunk="pri1"))).allowed


async def test_tenants_never_see_each_other(service: LimitsService) -> None:
    """Invariant 4: same device, number and pool names in two tenants are separate scopes,
    and a tenant's queries return only its own counters and leases."""
    s = service.settings
    await s.set_device_limit("acme", "100", 1)
    await s.set_device_limit("globex", "100", 1)
    await s.set_pool_size("acme", "dialer_seat", 1)
    a = await service.authorize(out_call("acme", device="100", pools=("dialer_seat",)))
    g = await service.authorize(out_call("globex", device="100", pools=("dialer_seat",)))
    assert a.allowed and g.allowed
    assert (await s.show(ScopeKind.DEVICE, "100", tenant="acme")).in_use == 1
    assert (await s.show(ScopeKind.POOL, "dialer_seat", tenant="globex")).limit is None
    assert [x.tenant for x in await s.list_scopes(ScopeKind.DEVICE, tenant="acme")] == ["acme"]
    assert {x.tenant for x in await s.list_scopes(ScopeKind.DEVICE)} == {"acme", "globex"}
    assert [x.name for x in await s.list_scopes(ScopeKind.TENANT_TOTAL, tenant="globex")] == [
        "globex"]
    assert [x.lease_id for x in await service.leases(tenant="acme")] == [a.lease_id]
    assert await service.lease(g.lease_id, tenant="acme") is None
    assert await service.lease(g.lease_id, tenant="globex") is not None
    with pytest.raises(InvalidName):
        await s.show(ScopeKind.DEVICE, "100")  # a device is always some tenant's
    with pytest.raises(InvalidName):
        await s.show(ScopeKind.TENANT_TOTAL, "acme", tenant="globex")


async def test_decisions_are_logged_with_the_refusing_scope(service: LimitsService) -> None:
    await service.settings.set_number_limit("acme", "+4930555", 0)
    with capture_logs() as logs:
        await service.authorize(out_call(call_id="c-1"))
        await service.authorize(in_call(number="+4930555", call_id="c-2"))
    assert [(e["event"], e["call_id"]) for e in logs] == [("limit_allowed", "c-1"),
                                                         ("limit_denied", "c-2")]
    assert logs[1]["reason"] == "number_full" and logs[1]["scope"] == "number/acme/+4930555"


@pytest.mark.parametrize(
    "kw",
    [
        {"tenant": "", "direction": "out"},
        {"tenant": "a/b", "direction": "out"},
        {"tenant": "acme", "direction": "sideways"},
        {"tenant": "acme", "direction": "in", "device": "x y"},
        {"tenant": "acme", "direction": "in", "pools": "dialer_seat"},
        {"tenant": "acme", "direction": "in", "trunk": "t{1}"},
    ],
)
def test_malformed_requests_are_clear_errors(kw: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        CallRequest(**kw)  # type: ignore[arg-type]


def test_direction_given_as_text_is_accepted() -> None:
    assert CallRequest("acme", "in").direction is Direction.IN  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
async def test_bad_limits_are_refused(service: LimitsService, bad: object) -> None:
    with pytest.raises(InvalidLimit):
        await service.settings.set_trunk_limit("pri1", bad)  # type: ignore[arg-type]


async def test_unknown_tenant_is_refused_when_the_site_says_so(
    make_service: MakeService,
) -> None:
    service = make_service(refuse_unknown_tenants=True)
    with capture_logs() as logs:
        typo = await service.authorize(out_call(tenant="acem"))
    assert (typo.result, typo.reason, typo.cause, typo.lease_id) == (
        Result.DENY, Reason.UNKNOWN_TENANT, 21, "")
    assert logs[0]["event"] == "limit_denied" and logs[0]["reason"] == "unknown_tenant"
    assert await service.in_use() == {}  # nothing taken
    # Emergency still passes for a tenant no one set up.
    assert (await service.authorize(out_call(tenant="acem", dest="112"))).emergency
    # Set up by any tenant setting: a limit, a policy or a reseller.
    await service.settings.set_tenant_limit("acme", "total", 5)
    await service.settings.set_tenant_policy("beta", "refuse")
    await service.settings.set_reseller("gamma", "acme")
    for tenant in ("acme", "beta", "gamma"):
        assert (await service.authorize(out_call(tenant=tenant))).allowed, tenant
    # Switched off at run time (a SIGHUP): the next call of an unknown tenant passes.
    service.refuse_unknown_tenants = False
    assert (await service.authorize(out_call(tenant="delta"))).allowed

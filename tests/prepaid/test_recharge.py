"""Tenant prepaid accounts: debited like cards, auto recharge sized from their own use."""

from __future__ import annotations

import pytest

from prepaid.cards import CardStatus
from prepaid.funding_hooks import CommandFundingHook, FundingRequest, FundingResult
from prepaid.rating import PlanSettings
from prepaid.recharge import AutoRecharger, RechargeStatus
from prepaid.sessions import AuthorizeRequest
from prepaid.tenant_accounts import TenantAccounts, tenant_account_id
from tests.prepaid.conftest import FLAT_CSV, T0, Prepaid


class ScriptedHook:
    def __init__(self, ok: bool, message: str = "") -> None:
        self.ok = ok
        self.message = message
        self.requests: list[FundingRequest] = []

    async def fund(self, request: FundingRequest) -> FundingResult:
        self.requests.append(request)
        return FundingResult(self.ok, reference="F-1" if self.ok else "", message=self.message)


async def tenant_with_history(pp: Prepaid, balance: int) -> str:
    """A tenant account that spent 200 a day (one 200 s call) over the last 30 days."""
    await pp.plan("std", FLAT_CSV, PlanSettings(currency="EUR"))
    accounts = TenantAccounts(pp.redis, pp.clock, pp.cards, pp.scripts)
    acc = await accounts.open("acme", "EUR", "std", balance=balance, auto_recharge=True)
    assert acc.id == tenant_account_id("acme") and acc.status is CardStatus.ACTIVE
    for day in range(29, -1, -1):
        start = T0 - day * 86400
        pp.clock.set(start)
        auth = await pp.sessions.authorize(AuthorizeRequest(acc.id, "4420123", f"d{day}"))
        assert auth.allowed
        await pp.sessions.hangup(auth.session_id, start + 200, answered_at=start)
    return acc.id


async def test_auto_recharge_sized_from_own_use(pp: Prepaid) -> None:
    acc = await tenant_with_history(pp, balance=10_000)
    hook = ScriptedHook(ok=True)
    rch = AutoRecharger(pp.redis, pp.cards, hook, pp.clock, events=pp.events)
    assert await rch.daily_average(acc) == 200
    first = await rch.check(acc)  # 4000 left, threshold 7 x 200
    assert (first.status, first.threshold) == (RechargeStatus.NOT_NEEDED, 1400)
    # a long call today: 2700 more spent, 1300 left; average now 8700 / 30 = 290
    auth = await pp.sessions.authorize(AuthorizeRequest(acc, "4420123", "big"))
    await pp.sessions.hangup(auth.session_id, T0 + 2700, answered_at=T0)
    outcome = await rch.check(acc)
    assert outcome.status is RechargeStatus.RECHARGED
    assert (outcome.daily_average, outcome.threshold, outcome.amount) == (290, 2030, 4060)
    assert hook.requests[0].amount == 4060 and hook.requests[0].currency == "EUR"
    assert (await pp.cards.get(acc)).balance == 1300 + 4060
    [record] = await rch.history(acc)
    assert record["ok"] and record["amount"] == 4060 and record["funder_reference"] == "F-1"
    assert "prepaid.recharged" in pp.events.kinds()


async def test_failed_recharge_puts_the_account_on_hold_and_says_so(pp: Prepaid) -> None:
    acc = await tenant_with_history(pp, balance=6_500)  # 500 left, threshold 1400
    hook = ScriptedHook(ok=False, message="card declined")
    rch = AutoRecharger(pp.redis, pp.cards, hook, pp.clock, events=pp.events)
    [outcome] = await rch.check_all()
    assert outcome.status is RechargeStatus.FAILED and "card declined" in outcome.message
    card = await pp.cards.get(acc)
    assert card.status is CardStatus.HOLD and "card declined" in card.hold_reason
    auth = await pp.sessions.authorize(AuthorizeRequest(acc, "4420123", "x"))
    assert (auth.allowed, auth.reason, auth.detail) == (False, "no_credit", "on_hold")
    failed = [p for k, p in pp.events.events if k == "prepaid.recharge_failed"]
    assert failed and failed[0]["on_hold"] and failed[0]["tenant"] == "acme"
    assert (await rch.check(acc)).status is RechargeStatus.ON_HOLD
    assert len(hook.requests) == 1  # no retry storm while on hold
    [record] = await rch.history(acc)
    assert record["ok"] is False and record["message"] == "card declined"
    # money arriving through a later successful recharge lifts the hold
    hook.ok = True
    await TenantAccounts(pp.redis, pp.clock, pp.cards, pp.scripts).release_hold("acme")
    assert (await rch.check(acc)).status is RechargeStatus.RECHARGED
    assert (await pp.sessions.authorize(AuthorizeRequest(acc, "4420123", "y"))).allowed


async def test_account_without_history_is_not_recharged(pp: Prepaid) -> None:
    await pp.plan("std", FLAT_CSV, PlanSettings(currency="EUR"))
    acc = await TenantAccounts(pp.redis, pp.clock, pp.cards, pp.scripts).open(
        "newco", "EUR", "std", balance=0)
    hook = ScriptedHook(ok=True)
    out = await AutoRecharger(pp.redis, pp.cards, hook, pp.clock).check(acc.id)
    assert out.status is RechargeStatus.NO_HISTORY and hook.requests == []


@pytest.mark.parametrize(
    ("script", "ok", "text"),
    [
        ("read req; echo \"$CALLGATE_RECHARGE_AMOUNT-ref\"", True, "4060-ref"),
        ("echo 'card declined' >&2; exit 3", False, "card declined"),
    ],
)
async def test_command_funding_hook(script: str, ok: bool, text: str) -> None:
    hook = CommandFundingHook(["sh", "-c", script], timeout_s=10)
    res = await hook.fund(FundingRequest("tenant.acme", "acme", 4060, "EUR", "r1"))
    assert res.ok is ok
    assert (res.reference if ok else res.message) == text


async def test_tenant_account_is_debited_live_like_a_card(pp: Prepaid) -> None:
    await pp.plan("std", FLAT_CSV, PlanSettings(currency="EUR"))
    acc = await TenantAccounts(pp.redis, pp.clock, pp.cards, pp.scripts).open(
        "dialer1", "EUR", "std", balance=50)
    sid = await pp.call(acc.id, "4420123", call_id="dial-1")
    sched = pp.scheduler()
    await sched.answered(sid)
    for _ in range(60):
        pp.clock.advance(1)
        await sched.run_due()
        await sched.idle()
    assert [c for c, _ in pp.control.cut] == ["dial-1"]
    cdr = await sched.hung_up(sid, pp.control.cut[0][1])
    assert cdr is not None and (cdr.tenant, cdr.charge, cdr.ended_by) == ("dialer1", 50, "credit")
    assert (await pp.cards.get(acc.id)).balance == 0

"""Calls on prepaid cards: authorize, live debit, warning, cut-off, settlement, CDRs."""

from __future__ import annotations

import io
import json

import pytest

from prepaid.debit import debit_args, debit_keys
from prepaid.money import Tax
from prepaid.rating import PlanSettings
from prepaid.scheduler import DebitScheduler
from prepaid.sessions import AuthorizeRequest
from tests.prepaid.conftest import FLAT_CSV, T0, Prepaid, make_prepaid


@pytest.fixture
async def std(pp: Prepaid) -> Prepaid:
    await pp.plan("std", FLAT_CSV, PlanSettings(currency="EUR"))
    return pp


async def run_until(pp: Prepaid, sched: DebitScheduler, until: float, step: float = 1.0) -> None:
    while pp.clock.now() < until:
        pp.clock.advance(step)
        await sched.run_due()
        await sched.idle()


async def test_card_worth_90_seconds_warned_at_60_left_and_cut_at_zero(std: Prepaid) -> None:
    pp = std
    card, _ = await pp.card(90)  # 1 minor unit per second on 44 (1/1)
    sid = await pp.call(card, "4420123", call_id="call-90")
    sched = pp.scheduler()
    await sched.answered(sid)
    await run_until(pp, sched, T0 + 100)
    assert pp.control.warned == [("call-90", "caller", T0 + 30)]
    assert pp.control.cut == [("call-90", T0 + 90)]
    assert "prepaid.warning" in pp.events.kinds() and "prepaid.cut_off" in pp.events.kinds()
    # the AMI Hangup that follows the cut-off
    cdr = await sched.hung_up(sid, T0 + 90, cause=16, ended_by="caller")
    assert cdr is not None
    assert (cdr.ended_by, cdr.billable_s, cdr.charge, cdr.uncollected) == ("credit", 90, 90, 0)
    c = await pp.cards.get(card)
    assert (c.balance, c.held) == (0, 0)


@pytest.mark.parametrize(("late_s", "balance", "uncollected"), [(0.3, -1, 0), (5.0, -1, 4)])
async def test_late_hangup_takes_at_most_one_increment_below_zero(
    std: Prepaid, late_s: float, balance: int, uncollected: int
) -> None:
    pp = std
    card, _ = await pp.card(90)
    sid = await pp.call(card, "4420123")
    sched = pp.scheduler()
    await sched.answered(sid)
    await run_until(pp, sched, T0 + 95)
    cdr = await sched.hung_up(sid, T0 + 90 + late_s)
    assert cdr is not None
    assert (cdr.total - cdr.charge, cdr.uncollected) == (uncollected, uncollected)
    c = await pp.cards.get(card)
    assert c.balance == balance and c.balance + cdr.charge == 90


async def test_warning_target_from_card_and_low_balance_event(pp: Prepaid) -> None:
    settings = PlanSettings(currency="EUR", warn_seconds=20, low_balance=50)
    await pp.plan("std", FLAT_CSV, settings)
    card, _ = await pp.card(60, warn_to="both")
    sid = await pp.call(card, "4420123", call_id="c2")
    sched = pp.scheduler()
    await sched.answered(sid)
    await run_until(pp, sched, T0 + 45)
    assert pp.control.warned == [("c2", "both", T0 + 40)]
    assert pp.events.kinds().count("prepaid.low_balance") == 1


async def test_authorize_refusals(std: Prepaid) -> None:
    pp = std
    card, _ = await pp.card(100, allow=("44",))
    auth = await pp.sessions.authorize(AuthorizeRequest(card, "99912345", "c"))
    assert (auth.allowed, auth.reason, auth.cause) == (False, "no_route", 1)
    auth = await pp.sessions.authorize(AuthorizeRequest(card, "33123456", "c"))
    assert (auth.reason, auth.cause, auth.detail) == ("no_route", 21, "not_allowed")
    poor, _ = await pp.card(29)  # 33 starts with a 30 s step costing 30
    auth = await pp.sessions.authorize(AuthorizeRequest(poor, "33123456", "c"))
    assert (auth.reason, auth.cause) == ("no_credit", 21)
    auth = await pp.sessions.authorize(AuthorizeRequest("000000000000", "4412", "c"))
    assert auth.reason == "card_blocked"
    auth = await pp.sessions.authorize(AuthorizeRequest("bad card{", "4412", "c"))
    assert auth.reason == "card_blocked"
    ok = await pp.sessions.authorize(AuthorizeRequest(poor, "4420123", "c"))
    assert (ok.allowed, ok.max_seconds, ok.destination_name) == (True, 29, "London")
    assert ok.variables()["CALLGATE_MAXSEC"] == "29"
    assert ok.variables()["CALLGATE_LEASE"] == ok.session_id


async def test_emergency_calls_are_allowed_and_never_charged(std: Prepaid) -> None:
    pp = std
    card, _ = await pp.card(0)
    await pp.cards.block(card)
    auth = await pp.sessions.authorize(AuthorizeRequest(card, "112", "e1"))
    assert (auth.allowed, auth.reason, auth.max_seconds) == (True, "emergency", 0)
    sched = pp.scheduler()
    await sched.answered(auth.session_id)
    await run_until(pp, sched, T0 + 600, step=30)
    assert pp.control.cut == []
    cdr = await sched.hung_up(auth.session_id, T0 + 600)
    assert cdr is not None
    assert (cdr.emergency, cdr.charge, cdr.duration_s) == (True, 0, 600)
    assert (await pp.cards.get(card)).balance == 0
    # unknown card: still allowed
    auth = await pp.sessions.authorize(AuthorizeRequest("nope", "911", "e2"))
    assert (auth.allowed, auth.session_id) == (True, "")


async def test_shared_balance_never_below_zero_and_money_is_conserved(std: Prepaid) -> None:
    pp = std
    card, _ = await pp.card(100)
    sched = pp.scheduler()
    sids = [await pp.call(card, "4420123", call_id=f"s{i}") for i in range(3)]
    for sid in sids:
        await sched.answered(sid)
    low = 0
    for _ in range(60):
        pp.clock.advance(1)
        await sched.run_due()
        await sched.idle()
        c = await pp.cards.get(card)
        low = min(low, c.balance)
        assert c.balance + c.held == 100
    assert len(pp.control.cut) == 3
    cut_at = {cid: t for cid, t in pp.control.cut}
    for i, sid in enumerate(sids):
        await sched.hung_up(sid, cut_at[f"s{i}"])
    c = await pp.cards.get(card)
    charges = sum(x.charge for x in await pp.all_cdrs())
    assert c.balance + charges == 100 and c.held == 0 and low >= 0


async def test_debit_replay_is_not_applied_twice(std: Prepaid) -> None:
    pp = std
    card, _ = await pp.card(100)
    sid = await pp.call(card, "4420123")
    rec = await pp.sessions.get(sid)
    assert rec.tariff is not None
    now_ms = int(T0 * 1000)
    args = debit_args(rec.tariff, None, False, 0, 0, now_ms, now_ms, 5)
    first = await pp.scripts.debit(keys=debit_keys(card, sid), args=args)
    again = await pp.scripts.debit(keys=debit_keys(card, sid), args=args)
    assert (first[0], again[0]) == (b"ok", b"dup")
    c = await pp.cards.get(card)
    assert (c.balance, c.held) == (95, 5)
    # a stale debit (built from an old state) changes nothing either
    stale = debit_args(rec.tariff, None, False, 1, 0, now_ms, now_ms + 1000, 8)
    assert (await pp.scripts.debit(keys=debit_keys(card, sid), args=stale))[0] == b"stale"
    assert (await pp.cards.get(card)).balance == 95


async def test_unanswered_call_has_a_zero_cdr_and_hangup_is_idempotent(std: Prepaid) -> None:
    pp = std
    card, _ = await pp.card(100)
    sid = await pp.call(card, "4420123", call_id="busy-1")
    pp.clock.advance(12)
    cdr = await pp.sessions.hangup(sid, pp.clock.now(), cause=17, ended_by="callee")
    assert (cdr.answer_ms, cdr.billable_s, cdr.charge, cdr.hangup_cause) == (0, 0, 0, 17)
    again = await pp.sessions.hangup(sid, pp.clock.now() + 50, cause=16)
    assert again == cdr
    assert len(await pp.all_cdrs()) == 1


async def test_call_that_ended_while_the_gateway_was_down_is_charged_once(std: Prepaid) -> None:
    pp = std
    card, _ = await pp.card(1000)
    sid = await pp.call(card, "4420123", call_id="down-1")
    # answer and end only known later, from the channel's own data
    pp.clock.advance(500)
    cdr = await pp.sessions.hangup(sid, T0 + 130, answered_at=T0 + 10)
    assert (cdr.answer_ms, cdr.duration_s, cdr.charge) == (int((T0 + 10) * 1000), 120, 120)
    await pp.sessions.hangup(sid, T0 + 130, answered_at=T0 + 10)
    assert (await pp.cards.get(card)).balance == 880
    assert len(await pp.all_cdrs()) == 1


async def test_cdr_relay_interrupted_by_a_crash_is_finished_on_resume(std: Prepaid) -> None:
    pp = std
    card, _ = await pp.card(100)
    sid = await pp.call(card, "4420123")
    sched = pp.scheduler()
    await sched.answered(sid)
    await sched.hung_up(sid, T0 + 10)  # settled; the ticker would relay the CDR next run
    del sched  # ... but the gateway dies first
    assert [c async for c in pp.cdrs.iter_range(0, 4e9)] == []
    assert list(await pp.cdrs.pending(card)) == [sid]  # the CDR waits in the outbox
    assert (await pp.cards.get(card)).balance == 90  # money moved with the settlement
    fresh = make_prepaid(pp.redis, pp.clock).scheduler()  # a new gateway process
    report = await fresh.resume()
    assert report.relayed == 1
    [cdr] = [c async for c in pp.cdrs.iter_range(0, 4e9)]
    assert cdr.charge == 10 and await pp.cdrs.pending(card) == {}
    await fresh.resume()
    assert len(await pp.all_cdrs()) == 1


async def test_blocking_a_card_stops_its_calls(std: Prepaid) -> None:
    pp = std
    card, _ = await pp.card(1000)
    sid = await pp.call(card, "4420123", call_id="b1")
    sched = pp.scheduler()
    await sched.answered(sid)
    await run_until(pp, sched, T0 + 10)
    await pp.cards.block(card, "stolen")
    await run_until(pp, sched, T0 + 20)
    assert [c for c, _ in pp.control.cut] == ["b1"]
    assert pp.control.cut[0][1] <= T0 + 13  # at the end of what it had paid


async def test_plan_reimport_does_not_change_calls_already_up(std: Prepaid) -> None:
    pp = std
    card, _ = await pp.card(1000)
    sid = await pp.call(card, "4420123")
    sched = pp.scheduler()
    await sched.answered(sid)
    dear = FLAT_CSV.replace("4420,London,0.60", "4420,London,6.00")
    await pp.plan("std", dear, PlanSettings(currency="EUR"))
    await run_until(pp, sched, T0 + 60)
    cdr = await sched.hung_up(sid, T0 + 60)
    assert cdr is not None and cdr.charge == 60
    sid2 = await pp.call(card, "4420123", call_id="c2")
    rec = await pp.sessions.get(sid2)
    assert rec.tariff is not None and rec.tariff.entry.rate == 6_000_000


async def test_taxes_charged_live_match_the_cdr(pp: Prepaid) -> None:
    taxes = (Tax("VAT", basis_points=1960), Tax("levy", fixed=3))
    csv_text = "prefix,rate,connection_fee,increments\n44,0.37,0.07,1/1\n"
    await pp.plan("tax", csv_text, PlanSettings(currency="EUR", taxes=taxes))
    card, _ = await pp.card(10_000, plan="tax")
    sid = await pp.call(card, "44123")
    sched = pp.scheduler()
    await sched.answered(sid)
    await run_until(pp, sched, T0 + 97)
    before = await pp.cards.get(card)
    cdr = await sched.hung_up(sid, T0 + 97)
    assert cdr is not None
    after = await pp.cards.get(card)
    # what the ticks took for 97 s plus the step held ahead, less the refund, is the CDR price
    assert before.balance + before.held - after.balance == cdr.charge == cdr.total
    assert cdr.net == 7 + -(-97 * 370000 // 600000)
    assert [t.amount for t in cdr.taxes] == [(cdr.net * 1960 + 5000) // 10000, 3]


async def test_cdr_export_by_time_range_csv_and_jsonl(std: Prepaid) -> None:
    pp = std
    card, _ = await pp.card(1000, tenant="shopX")
    other, _ = await pp.card(1000, tenant="shopY")
    for i, (c, start, length) in enumerate([(card, 0, 30), (card, 100, 20), (other, 200, 5)]):
        pp.clock.set(T0 + start)
        sid = await pp.call(c, "4420123", call_id=f"x{i}")
        await pp.sessions.hangup(sid, T0 + start + length, answered_at=T0 + start)
    out = io.StringIO()
    n = await pp.cdrs.export(T0 + 50, T0 + 1000, out, "csv")
    lines = out.getvalue().splitlines()
    assert n == 2 and lines[0].startswith("session_id,call_id,account,tenant")
    assert ["x1" in lines[1], "x2" in lines[2]] == [True, True]
    out = io.StringIO()
    assert await pp.cdrs.export(T0, T0 + 1000, out, "jsonl", tenant="shopX") == 2
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["call_id"] for r in rows] == ["x0", "x1"] and rows[0]["charge"] == 30


async def test_bundle_minutes_are_used_before_money_and_reset_monthly(pp: Prepaid) -> None:
    settings = PlanSettings.from_config({
        "currency": "EUR", "timezone": "UTC",
        "bundle": {"minutes": 2, "prefixes": ["44"], "rollover": True},
    })
    await pp.plan("bun", FLAT_CSV, settings)
    card, _ = await pp.card(1000, plan="bun")
    sched = pp.scheduler()

    async def call(length: int, dest: str = "4420123") -> int:
        sid = await pp.call(card, dest, call_id=f"b{pp.clock.now()}")
        start = pp.clock.now()
        await sched.answered(sid)
        await run_until(pp, sched, start + length)
        cdr = await sched.hung_up(sid, start + length)
        assert cdr is not None
        return cdr.charge

    assert await call(100) == 0  # 100 of the 120 free seconds
    assert (await pp.cards.get(card)).bundle_left == 20
    assert await call(30, dest="33123") == 30  # France is not in the bundle
    assert (await pp.cards.get(card)).bundle_left == 20
    pp.clock.set(T0 + 40 * 86400)  # the next cycle (first use on the 15th): 120 s + 20 rolled
    assert await call(60) == 0
    assert (await pp.cards.get(card)).bundle_left == 80
    assert await call(100) == 20  # 80 s free, then money
    c = await pp.cards.get(card)
    assert (c.bundle_left, c.balance) == (0, 1000 - 30 - 20)


async def test_new_ticker_resumes_calls_after_a_gateway_crash(std: Prepaid) -> None:
    pp = std
    rich, _ = await pp.card(1000)
    poor, _ = await pp.card(40)
    a = await pp.call(rich, "4420123", call_id="rich")
    b = await pp.call(poor, "4420123", call_id="poor")
    old = pp.scheduler()
    await old.answered(a)
    await old.answered(b)
    await run_until(pp, old, T0 + 10)
    del old  # kill -9: nothing settled, nothing flushed
    pp.clock.set(T0 + 60)  # down for 50 s; both calls still up
    new = pp.scheduler()
    report = await new.resume()
    assert (report.live, report.cut) == (2, 0)
    await new.run_due()
    await new.idle()
    # the poor card's 40 s ran out while we were down: cut at once
    assert [c for c, _ in pp.control.cut] == ["poor"]
    assert (await pp.cards.get(poor)).balance == 0
    rich_card = await pp.cards.get(rich)
    assert rich_card.held >= 60  # the rich call paid for the time it ran meanwhile
    cdr_b = await new.hung_up(b, T0 + 60.5)
    cdr_a = await new.hung_up(a, T0 + 75)
    assert cdr_b is not None and cdr_a is not None
    assert (cdr_b.ended_by, cdr_b.charge, cdr_b.uncollected) == ("credit", 41, 20)
    assert cdr_a.charge == 75 and (await pp.cards.get(rich)).balance == 925
    assert (await pp.cards.get(poor)).balance == -1  # one 1 s increment below zero at most


async def test_hangup_before_the_first_debit_still_charges_the_answered_call(
    std: Prepaid,
) -> None:
    pp = std
    card, _ = await pp.card(100)
    sid = await pp.call(card, "4420123")
    sched = pp.scheduler()
    await sched.answered(sid, T0)
    pp.clock.advance(7)
    cdr = await sched.hung_up(sid, T0 + 7)  # no ticker run in between
    assert cdr is not None and (cdr.answer_ms, cdr.charge) == (int(T0 * 1000), 7)
    assert (await pp.cards.get(card)).balance == 93


async def test_money_held_by_live_calls_is_visible(std: Prepaid) -> None:
    pp = std
    card, _ = await pp.card(100)
    sids = [await pp.call(card, "4420123", call_id=f"h{i}") for i in range(2)]
    assert await pp.sessions.session_for_call("h1") == sids[1]
    sched = pp.scheduler()
    for sid in sids:
        await sched.answered(sid)
    await run_until(pp, sched, T0 + 5)
    c = await pp.cards.get(card)
    assert await pp.cards.live_sessions(card) == sorted(sids)
    assert c.held == 2 * 7 and c.balance == 100 - c.held  # 5 s each + 2 s paid ahead
    for sid in sids:
        await sched.hung_up(sid, T0 + 5)
    c = await pp.cards.get(card)
    assert (c.held, c.balance, await pp.cards.live_sessions(card)) == (0, 90, [])

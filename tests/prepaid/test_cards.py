"""Card batches, life cycle, topups, tenant lists, booths, PIN lock-out, vouchers."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest

from prepaid import keys
from prepaid.batches import BatchSpec, luhn_ok
from prepaid.cards import CardStatus
from prepaid.errors import CardNotFound, CardStateError, CurrencyMismatch
from prepaid.pins import PinResult
from prepaid.rating import PlanSettings
from prepaid.sessions import AuthorizeRequest
from prepaid.vouchers import RedeemStatus
from tests.prepaid.conftest import FLAT_CSV, T0, Prepaid


async def test_batch_cards_print_and_pins_are_only_hashed(pp: Prepaid) -> None:
    seen: list[tuple[int, int]] = []
    spec = BatchSpec(count=2500, value=500, currency="EUR", plan="std", tenant="shop1",
                     expires_at=T0 + 365 * 86400)
    issued = await pp.batches.create(spec, progress=lambda d, t: seen.append((d, t)))
    assert len(issued.cards) == 2500 == len({c.number for c in issued.cards})
    assert seen[-1] == (2500, 2500) and len(seen) == 3
    assert all(luhn_ok(c.number) and len(c.number) == 12 for c in issued.cards)
    out = io.StringIO()
    issued.write_csv(out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 2500
    assert rows[0]["value"] == "5.00" and rows[0]["expires"] == "2028-01-15"
    one = issued.cards[0]
    raw = await pp.redis.hgetall(keys.card(one.number))
    stored = b"".join(v if isinstance(v, bytes) else v.encode() for v in raw.values())
    assert one.pin.encode() not in stored  # never in clear
    assert raw[b"pin"] == pp.hasher.pin(one.number, one.pin).encode()
    card = await pp.cards.get(one.number)
    assert (card.status, card.balance, card.currency, card.tenant) == (
        CardStatus.CREATED, 500, "EUR", "shop1")


async def test_life_cycle_created_sold_active_blocked_expired(pp: Prepaid) -> None:
    await pp.plan("std", FLAT_CSV, PlanSettings(currency="EUR"))
    issued = await pp.batches.create(BatchSpec(
        count=1, value=500, currency="EUR", plan="std", tenant="shop1", valid_days=30))
    n = issued.cards[0].number
    req = AuthorizeRequest(n, "4420123", "c1")
    assert (await pp.sessions.authorize(req)).reason == "card_blocked"  # not sold yet
    assert (await pp.cards.sell(n)).status is CardStatus.SOLD
    with pytest.raises(CardStateError):
        await pp.cards.sell(n)
    assert (await pp.sessions.authorize(req)).allowed
    card = await pp.cards.get(n)
    assert card.status is CardStatus.ACTIVE and card.activated_ms == int(T0 * 1000)
    assert card.expires_ms == int((T0 + 30 * 86400) * 1000)  # validity counted from first use
    await pp.cards.block(n, "lost")
    assert (await pp.sessions.authorize(req)).reason == "card_blocked"
    assert (await pp.cards.unblock(n)).status is CardStatus.ACTIVE
    pp.clock.advance(31 * 86400)
    auth = await pp.sessions.authorize(req)
    assert (auth.reason, auth.detail) == ("card_blocked", "expired")
    assert (await pp.cards.get(n)).status is CardStatus.EXPIRED


async def test_topup_is_idempotent_by_reference(pp: Prepaid) -> None:
    n, _ = await pp.card(100)
    assert (await pp.cards.topup(n, 250, "receipt-1")).balance == 350
    again = await pp.cards.topup(n, 250, "receipt-1")
    assert (again.applied, again.balance) == (False, 350)
    with pytest.raises(CurrencyMismatch):
        await pp.cards.topup(n, 250, "receipt-2", currency="USD")
    await pp.cards.block(n)
    with pytest.raises(CardStateError):
        await pp.cards.topup(n, 250, "receipt-3")


async def test_tenants_only_see_their_cards(pp: Prepaid) -> None:
    a, _ = await pp.card(100, tenant="shopA")
    b, _ = await pp.card(100, tenant="shopB")
    _, cards = await pp.cards.list_by_tenant("shopA")
    assert [c.id for c in cards] == [a]
    with pytest.raises(CardNotFound):
        await pp.cards.get(b, tenant="shopA")
    await pp.plan("std", FLAT_CSV, PlanSettings(currency="EUR"))
    auth = await pp.sessions.authorize(AuthorizeRequest(b, "4420123", "c1", tenant="shopA"))
    assert (auth.allowed, auth.reason) == (False, "card_blocked")


async def test_booth_bound_to_a_card(pp: Prepaid) -> None:
    n, _ = await pp.card(100)
    await pp.cards.bind_booth("booth7", n, ttl_s=600)
    assert await pp.cards.booth_card("booth7") == n
    await pp.cards.unbind_booth("booth7")
    assert await pp.cards.booth_card("booth7") is None


async def test_pin_lock_out_per_card(pp: Prepaid) -> None:
    n, pin = await pp.card(100)
    assert await pp.pins.verify_pin(n, pin, "100") is PinResult.OK
    results = [await pp.pins.verify_pin(n, "000000", f"20{i}") for i in range(5)]
    assert results == [PinResult.BAD_PIN] * 4 + [PinResult.CARD_LOCKED]
    # locked: even the right PIN is refused, from any caller
    assert await pp.pins.verify_pin(n, pin, "300") is PinResult.CARD_LOCKED
    assert PinResult.CARD_LOCKED.reason == "card_blocked"
    assert ("prepaid.card_locked", n) in [(k, p.get("card")) for k, p in pp.events.events]
    await pp.pins.unlock(n)
    assert await pp.pins.verify_pin(n, pin, "300") is PinResult.OK


async def test_pin_lock_out_per_caller_across_cards(pp: Prepaid) -> None:
    cards = [await pp.card(100) for _ in range(6)]
    results = []
    for i in range(10):
        n, _ = cards[i % 6]
        results.append(await pp.pins.verify_pin(n, "999999", "+33611111111"))
    assert results[:9] == [PinResult.BAD_PIN] * 9
    assert results[9] is PinResult.CALLER_LOCKED
    n, pin = cards[0]
    assert await pp.pins.verify_pin(n, pin, "+33611111111") is PinResult.CALLER_LOCKED
    assert await pp.pins.verify_pin(n, pin, "+33622222222") is PinResult.OK
    # unknown cards count against the caller too, and say bad_pin (no existence oracle)
    assert await pp.pins.verify_pin("123456789012", "1234", "x1") is PinResult.BAD_PIN


async def test_right_pin_on_a_blocked_card_says_blocked(pp: Prepaid) -> None:
    n, pin = await pp.card(100)
    await pp.cards.block(n)
    assert await pp.pins.verify_pin(n, pin, "100") is PinResult.CARD_BLOCKED
    assert await pp.pins.verify_pin(n, "111111", "100") is PinResult.BAD_PIN


async def test_voucher_redeemed_once_under_concurrency(pp: Prepaid) -> None:
    vs = await pp.vouchers.create_batch(3, 1000, "EUR", tenant="shop1")
    cards = [(await pp.card(0))[0] for _ in range(20)]
    code = vs.codes[0]
    results = await asyncio.gather(*(pp.vouchers.redeem(code, c) for c in cards))
    assert sorted(r.status for r in results).count(RedeemStatus.OK) == 1
    assert {r.status for r in results} == {RedeemStatus.OK, RedeemStatus.USED}
    balances = [(await pp.cards.get(c)).balance for c in cards]
    assert sorted(balances) == [0] * 19 + [1000]
    # the same card redeeming the same code many times at once: credited once
    one = cards[0]
    again = await asyncio.gather(*(pp.vouchers.redeem(vs.codes[1], one) for _ in range(10)))
    assert [r.status for r in again].count(RedeemStatus.OK) == 1
    assert (await pp.cards.get(one)).balance == balances[0] + 1000


async def test_voucher_refusals(pp: Prepaid) -> None:
    mine, _ = await pp.card(0, tenant="shop1")
    other, _ = await pp.card(0, tenant="shop2")
    usd, _ = await pp.card(0, tenant="shop1", currency="USD")
    vs = await pp.vouchers.create_batch(2, 500, "EUR", tenant="shop1", expires_at=T0 + 3600)
    assert (await pp.vouchers.redeem(vs.codes[0], other)).status is RedeemStatus.WRONG_TENANT
    assert (await pp.vouchers.redeem(vs.codes[0], usd)).status is RedeemStatus.WRONG_CURRENCY
    assert (await pp.vouchers.redeem("12345678901234", mine)).status is RedeemStatus.UNKNOWN
    pp.clock.advance(7200)
    assert (await pp.vouchers.redeem(vs.codes[1], mine)).status is RedeemStatus.EXPIRED
    assert (await pp.cards.get(mine)).balance == 0


async def test_voucher_claim_left_by_a_crash_is_finished_by_the_same_card(pp: Prepaid) -> None:
    vs = await pp.vouchers.create_batch(1, 700, "EUR")
    card, _ = await pp.card(0)
    thief, _ = await pp.card(0)
    code = vs.codes[0]
    # the claim went through, the gateway died before crediting
    res = await pp.scripts.voucher_claim(
        keys=[keys.voucher(pp.hasher.voucher(code))],
        args=["claim", card, "shop1", "EUR", int(T0 * 1000)],
    )
    assert res[0] == b"claimed"
    assert (await pp.vouchers.redeem(code, thief)).status is RedeemStatus.USED
    assert (await pp.vouchers.redeem(code, card)).status is RedeemStatus.OK
    assert (await pp.cards.get(card)).balance == 700
    assert (await pp.vouchers.redeem(code, card)).status is RedeemStatus.ALREADY_REDEEMED
    assert (await pp.cards.get(card)).balance == 700

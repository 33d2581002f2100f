"""The `prepaid` IVR route and card= refusals, played through the simulated Asterisk."""

from __future__ import annotations

import asyncio

from gateway.prepaid_end_records import END_FAMILY, parse_end
from prepaid import keys
from prepaid.clock import SystemClock
from prepaid.pins import PinHasher
from prepaid.vouchers import VoucherService
from tests.e2e_prepaid.conftest import PIN_SECRET, PrepaidStack


async def test_ivr_caller_types_card_pin_and_number_then_hangs_up(stack: PrepaidStack) -> None:
    card, pin = await stack.card(1000)  # 10.00 EUR
    call = stack.place_ivr(f"{card}#{pin}#442071234567#")
    decided = await stack.decided(call, timeout=15)
    assert (decided["CALLGATE_RESULT"], decided["CALLGATE_REASON"]) == ("ALLOW", "ok")
    assert decided["CALLGATE_MAXSEC"] == "1000"
    await stack.answered(call)
    await asyncio.sleep(10 / 20)  # ~10 simulated seconds of talk
    stack.hang_up(call)
    await asyncio.wait_for(call.ended.wait(), 10)
    cdr = (await stack.cdrs())[0]
    assert cdr.ended_by == "caller"
    assert stack.ami_hangups == []  # the gateway cut nothing
    assert 8 <= cdr.billable_s <= 14
    assert await stack.balance(card) + cdr.charge == 1000
    # the h extension's end record (for a gateway that is down) is deleted on `release`
    async with asyncio.timeout(10):
        while stack.sim.world.astdb.family("callgate_end"):
            await asyncio.sleep(0.05)
    # what the caller heard: balance, then the minutes the call may last
    said = [f.get("Command", "") for f in stack.seen("AGIExecStart", Channel=call.g2.name)]
    numbers = [c for c in said if c.startswith("SAY NUMBER")]
    assert numbers[:3] == ["SAY NUMBER 10 \"\"", "SAY NUMBER 0 \"\"", "SAY NUMBER 16 \"\""]


async def test_caller_tops_up_with_a_voucher_by_phone(stack: PrepaidStack) -> None:
    assert stack.services.prepaid is not None
    hasher = PinHasher(PIN_SECRET.encode())
    vouchers = VoucherService(stack.redis, hasher, SystemClock(), stack.services.prepaid.cards)
    code = (await vouchers.create_batch(1, 500, "EUR")).codes[0]
    card, pin = await stack.card(0)  # empty: it could not call
    call = stack.place_ivr(f"{card}#{pin}#*#{code}#442071234567#")
    decided = await stack.decided(call, timeout=15)
    assert (decided["CALLGATE_RESULT"], decided["CALLGATE_MAXSEC"]) == ("ALLOW", "500")
    assert decided["CALLGATE_DEST"] == "442071234567"
    await stack.answered(call)
    stack.hang_up(call)
    await asyncio.wait_for(call.ended.wait(), 10)
    cdrs = [c for c in await stack.cdrs() if c.account == card]
    assert stack.services.prepaid is not None
    info = await stack.services.prepaid.cards.get(card)
    live = await stack.services.prepaid.cards.live_sessions(card)
    # what to look at if this ever fails again (it did once, not reproduced since):
    # sessions still holding money, and each CDR's money fields
    held = {sid: await stack.redis.hgetall(keys.session(card, sid)) for sid in live}
    money = [(c.session_id, c.total, c.charge, c.uncollected, c.billable_s, c.answer_ms,
              c.end_ms) for c in cdrs]
    assert len(cdrs) == 1 and info.held == 0, (info, held, money)
    assert info.balance + sum(c.charge for c in cdrs) == 500, (info, held, money)


async def test_booth_bound_to_a_card_calls_without_card_or_pin(stack: PrepaidStack) -> None:
    assert stack.services.prepaid is not None
    card, _ = await stack.card(300)
    await stack.services.prepaid.cards.bind_booth("booth-3", card)
    call = stack.place("442071234567", "prepaid-booth", BOOTH="booth-3")
    decided = await stack.decided(call, timeout=15)
    assert (decided["CALLGATE_RESULT"], decided["CALLGATE_MAXSEC"]) == ("ALLOW", "300")
    stack.hang_up(call)
    await asyncio.wait_for(call.ended.wait(), 10)
    cdr = (await stack.cdrs())[0]
    assert (cdr.account, cdr.destination) == (card, "442071234567")


async def test_callee_hanging_up_first_is_recorded(stack: PrepaidStack) -> None:
    card, _ = await stack.card(1000)
    call = stack.place("449123456", "prepaid-out", CARD=card)  # the far end stops at 20 s
    await asyncio.wait_for(call.ended.wait(), 10)
    cdr = (await stack.cdrs())[0]
    assert cdr.ended_by == "callee"
    assert 19 <= cdr.billable_s <= 22


async def test_wrong_pins_lock_the_card_out(stack: PrepaidStack) -> None:
    card, pin = await stack.card(1000)
    call = stack.place_ivr(f"{card}#0000#{card}#1111#{card}#2222#")
    decided = await stack.decided(call, timeout=15)
    # third failure on this card (card_failures = 3): locked, said card_blocked
    assert (decided["CALLGATE_RESULT"], decided["CALLGATE_REASON"]) == ("DENY", "card_blocked")
    assert decided["CALLGATE_LEASE"] == ""
    again = stack.place_ivr(f"{card}#{pin}#442071234567#")
    decided = await stack.decided(again, timeout=15)
    assert (decided["CALLGATE_RESULT"], decided["CALLGATE_REASON"]) == ("DENY", "card_blocked")


async def test_three_wrong_pins_on_unknown_cards_say_bad_pin(stack: PrepaidStack) -> None:
    call = stack.place_ivr("123#0000#456#0000#789#0000#")
    decided = await stack.decided(call, timeout=15)
    assert (decided["CALLGATE_RESULT"], decided["CALLGATE_REASON"]) == ("DENY", "bad_pin")


async def test_empty_card_is_refused_no_credit_and_holds_no_slot(stack: PrepaidStack) -> None:
    card, _ = await stack.card(0)
    call = stack.place("442071234567", "prepaid-out", CARD=card)
    decided = await stack.decided(call)
    assert (decided["CALLGATE_RESULT"], decided["CALLGATE_REASON"],
            decided["CALLGATE_CAUSE"], decided["CALLGATE_LEASE"]) == ("DENY", "no_credit",
                                                                      "21", "")
    assert (await stack.services.limits.settings.show_tenant("shop1")).total.in_use == 0


async def test_destination_outside_the_plan_is_no_route(stack: PrepaidStack) -> None:
    card, _ = await stack.card(1000)
    call = stack.place("33123456789", "prepaid-out", CARD=card)
    decided = await stack.decided(call)
    assert (decided["CALLGATE_RESULT"], decided["CALLGATE_REASON"]) == ("DENY", "no_route")


async def test_cdr_counts_from_the_callees_answer_not_the_ivrs(stack: PrepaidStack) -> None:
    """The IVR answers the caller's channel, so Dial's ANSWEREDTIME_MS in the h extension's
    record (the channel's up time, as in Asterisk) also counts the IVR and the ringing; the
    gateway, which saw the callee answer, charges from that answer only."""
    card, pin = await stack.card(1000)
    # the callee rings 12 s (the simulated dialplan dials the context's extension)
    call = stack.place_ivr(f"{card}#{pin}#447212345678#", number="447212345678")
    await stack.decided(call, timeout=15)
    lease = call.var(call.g2, "CALLGATE_LEASE")
    await stack.answered(call)
    await asyncio.sleep(10 / 20)  # ~10 simulated seconds of talk
    stack.hang_up(call)
    await asyncio.wait_for(call.ended.wait(), 10)
    record = parse_end(stack.sim.world.astdb.get(END_FAMILY, lease) or "")
    cdr = (await stack.cdrs())[0]
    assert record is not None and record.answered_ms is not None
    assert record.answered_ms >= cdr.duration_s * 1000 + 6000  # + the 12 s of ringing
    assert 8 <= cdr.billable_s <= 14
    assert cdr.answer_ms > round(record.end * 1000) - record.answered_ms

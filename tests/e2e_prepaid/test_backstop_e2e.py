"""The dialplan's own limit: examples/asterisk/extensions.conf sets
TIMEOUT(absolute) = CALLGATE_MAXSEC + a margin right after the decision, as a backstop for
a gateway that does not cut the call off. When it ends a card call, the CDR says `limit`."""

from __future__ import annotations

import asyncio

from tests.e2e_prepaid.conftest import RING_S, TIMEOUT_MARGIN_S, PrepaidStack


async def test_topped_up_call_is_ended_by_the_dialplan_limit(stack: PrepaidStack) -> None:
    card, _ = await stack.card(20)  # 20 s at one cent a second
    call = stack.place("442071234567", "prepaid-backstop", CARD=card)
    decided = await stack.decided(call)
    assert (decided["CALLGATE_RESULT"], decided["CALLGATE_MAXSEC"]) == ("ALLOW", "20")
    decided_at = stack.at("AGIExecEnd", Channel=call.g2.name)
    await stack.answered(call)
    assert stack.services.prepaid is not None
    # topped up at the counter: the gateway has money to debit and never cuts the call
    await stack.services.prepaid.cards.topup(card, 1000, "receipt-1")
    await asyncio.wait_for(call.ended.wait(), 10)

    assert stack.ami_hangups == []  # the gateway cut nothing
    ended = stack.at("Hangup", Channel=call.g2.name)
    # the absolute timeout (sim seconds run 20 times faster: a little slack for a busy loop)
    assert -0.5 < ended - decided_at - (20 + TIMEOUT_MARGIN_S) < 3.0
    cdrs = await stack.cdrs()
    assert len(cdrs) == 1
    cdr = cdrs[0]
    assert cdr.ended_by == "limit"
    assert 20 + TIMEOUT_MARGIN_S - 3 <= cdr.billable_s <= 20 + TIMEOUT_MARGIN_S + 3
    assert cdr.charge == cdr.billable_s  # rated at one cent a second
    assert await stack.balance(card) + cdr.charge == 1020


async def test_backstop_that_counted_the_ringing_is_still_the_limit(
    stack: PrepaidStack,
) -> None:
    """TIMEOUT(absolute) counts from the decision: a callee that rang longer than the
    margin is cut before the answered time reaches CALLGATE_MAXSEC (and before the
    gateway's own cut-off at the end of the credit). It is still the dialplan's limit."""
    card, _ = await stack.card(30)
    call = stack.place("447212345678", "prepaid-backstop", CARD=card)  # rings 12 s
    decided = await stack.decided(call)
    assert decided["CALLGATE_MAXSEC"] == "30"
    await asyncio.wait_for(call.ended.wait(), 10)

    assert stack.ami_hangups == []
    answered = stack.at("DialEnd", Channel=call.g2.name, DialStatus="ANSWER")
    ended = stack.at("Hangup", Channel=call.g2.name)
    assert ended - answered < 30  # short of MAXSEC: the ringing counted
    assert RING_S["4472"] > TIMEOUT_MARGIN_S
    cdr = (await stack.cdrs())[0]
    assert cdr.ended_by == "limit"
    assert cdr.billable_s < 30
    assert cdr.charge == cdr.billable_s
    assert await stack.balance(card) + cdr.charge == 30


async def test_caller_hanging_up_before_the_limit_is_the_caller(stack: PrepaidStack) -> None:
    card, _ = await stack.card(30)
    call = stack.place("447212345678", "prepaid-backstop", CARD=card)  # rings 12 s
    await stack.answered(call)
    await asyncio.sleep(5 / 20)  # 5 s of talk: 17 s after the decision, MAXSEC is 30
    stack.hang_up(call)
    await asyncio.wait_for(call.ended.wait(), 10)
    cdr = (await stack.cdrs())[0]
    assert cdr.ended_by == "caller"
    assert await stack.balance(card) + cdr.charge == 30

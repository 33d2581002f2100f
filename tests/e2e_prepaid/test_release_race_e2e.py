"""The h extension's `release` reaching the gateway before its AMI listener has handled the
call's answer (the listener's queue is busy; the channel table itself already saw the
Hangup): the call must still be charged from its answer, once, and money conserved."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2e_prepaid.conftest import PrepaidStack


async def test_release_overtaking_the_answer_still_charges_the_call(
    stack: PrepaidStack,
) -> None:
    prepaid = stack.services.prepaid
    assert prepaid is not None
    card, _ = await stack.card(1000)
    gate, released = asyncio.Event(), asyncio.Event()
    answered, release = prepaid.call_answered, prepaid.release

    async def late_answer(*args: Any, **kwargs: Any) -> None:
        await gate.wait()  # the listener is busy: this call's answer is handled late
        await answered(*args, **kwargs)

    async def watched_release(*args: Any, **kwargs: Any) -> None:
        await release(*args, **kwargs)
        released.set()

    prepaid.call_answered = late_answer  # type: ignore[method-assign]
    prepaid.release = watched_release  # type: ignore[method-assign]

    call = stack.place("442071234567", "prepaid-out", CARD=card)
    await stack.answered(call)
    await asyncio.sleep(5 / 20)  # ~5 simulated seconds of talk
    stack.hang_up(call)
    await asyncio.wait_for(call.ended.wait(), 10)
    await asyncio.wait_for(released.wait(), 10)  # the h extension's release came first
    gate.set()

    cdr = (await stack.cdrs())[0]
    assert cdr.answer_ms > 0, cdr  # answered, so charged from its answer
    assert 4 <= cdr.billable_s <= 8, cdr
    assert cdr.charge == cdr.billable_s  # one cent a second
    assert await stack.balance(card) + cdr.charge == 1000
    assert (await prepaid.cards.get(card)).held == 0

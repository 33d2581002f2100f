"""A card call answered and ended while the gateway is up but its AMI session is down: no
Answer, no Hangup reach it, only the h extension's `release`, which carries Dial's
ANSWEREDTIME_MS. The call is charged for the time it was answered, once."""

from __future__ import annotations

import asyncio

from tests.e2e_prepaid.conftest import PrepaidStack


async def test_release_with_answered_ms_charges_a_call_ami_never_showed(
    stack: PrepaidStack,
) -> None:
    prepaid = stack.services.prepaid
    assert prepaid is not None
    card, _ = await stack.card(1000)
    port = stack.sim.ami.port
    call = stack.place("442071234567", "prepaid-out", CARD=card)
    assert (await stack.decided(call))["CALLGATE_RESULT"] == "ALLOW"
    await stack.sim.ami.stop()  # AMI drops before the callee answers; calls carry on
    async with asyncio.timeout(10):
        while call.c1 is None or call.c1.answered_at is None:
            await asyncio.sleep(0.02)
    await asyncio.sleep(6 / 20)  # ~6 simulated seconds of talk
    stack.hang_up(call)
    await asyncio.wait_for(call.ended.wait(), 10)

    cdr = (await stack.cdrs())[0]
    assert cdr.answer_ms > 0, cdr  # answered, although the gateway never saw it on AMI
    assert 5 <= cdr.billable_s <= 12, cdr  # ~6 s of talk; a busy loop stretches it
    assert cdr.charge == cdr.billable_s  # one cent a second
    assert await stack.balance(card) + cdr.charge == 1000

    stack.sim.ami.port = port  # AMI comes back: the sweep must not settle it again
    await stack.sim.ami.start()
    await asyncio.sleep(1.0)
    assert [c.session_id for c in await stack.cdrs()] == [cdr.session_id]
    assert await stack.balance(card) + cdr.charge == 1000

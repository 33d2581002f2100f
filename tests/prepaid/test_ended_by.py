"""Who ended a card call, as its CDR says: `credit` only when this gateway's cut-off did.
A gateway frozen past the end of the credit wakes up, and its ticker marks the call cut
after the call had already ended (the dialplan's limit, the caller): the CDR keeps who
really ended it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from prepaid.debit import debit_args, debit_keys
from prepaid.rating import PlanSettings
from prepaid.scheduler import DebitScheduler
from tests.prepaid.conftest import FLAT_CSV, T0, Prepaid, RecordingControl


@dataclass
class GoneCallControl(RecordingControl):
    """Asterisk answers the cut-off's Hangup with `No such channel`: the call had ended."""

    async def cut_off(self, call_id: str) -> bool:
        await super().cut_off(call_id)
        return False


@pytest.fixture
async def std(pp: Prepaid) -> Prepaid:
    await pp.plan("std", FLAT_CSV, PlanSettings(currency="EUR"))
    return pp


async def _run_until(pp: Prepaid, sched: DebitScheduler, until: float) -> None:
    while pp.clock.now() < until:
        pp.clock.advance(1.0)
        await sched.run_due()
        await sched.idle()


async def test_cut_off_that_found_the_call_gone_keeps_who_ended_it(std: Prepaid) -> None:
    pp = std
    card, _ = await pp.card(10)
    sid = await pp.call(card, "4420123", call_id="frozen-1")
    sched = DebitScheduler(pp.sessions, GoneCallControl(pp.clock), pp.clock, events=pp.events)
    await sched.answered(sid)
    await _run_until(pp, sched, T0 + 14)  # the ticker decides the cut-off at 10 s...
    assert sched.stats.cut_offs == 1
    # ...but the call had ended at 12 s by the dialplan's limit; its Hangup comes now
    cdr = await sched.hung_up(sid, T0 + 12, cause=16, ended_by="limit")
    assert cdr is not None
    assert cdr.ended_by == "limit"
    assert "prepaid.cut_off" not in pp.events.kinds()  # nothing was cut off
    c = await pp.cards.get(card)
    assert c.balance + cdr.charge == 10 and c.balance >= -1


async def test_cut_marked_by_a_debit_not_yet_seen_here_keeps_who_ended_it(
    std: Prepaid,
) -> None:
    pp = std
    card, _ = await pp.card(10)
    sid = await pp.call(card, "4420123", call_id="frozen-2")
    sched = pp.scheduler()
    await sched.answered(sid)
    await _run_until(pp, sched, T0 + 3)
    # a debit runs past the end of the credit (the gateway just woke up) and marks the
    # session cut in Redis; the caller's hangup is handled before its reply
    rec = await pp.sessions.get(sid)
    assert rec.tariff is not None and rec.seq > 0
    now_ms = int((T0 + 13) * 1000)
    late = debit_args(rec.tariff, None, False, rec.seq, rec.paid_s, rec.answer_ms, now_ms, 14)
    reply = await pp.scripts.debit(keys=debit_keys(card, sid), args=late)
    assert reply[7] == b"credit"
    cdr = await sched.hung_up(sid, T0 + 12.5, cause=16, ended_by="caller")
    assert cdr is not None
    assert cdr.ended_by == "caller"
    assert pp.control.cut == []
    c = await pp.cards.get(card)
    assert c.balance + cdr.charge == 10 and c.held == 0


async def test_the_gateways_own_cut_off_is_credit(std: Prepaid) -> None:
    pp = std
    card, _ = await pp.card(10)
    sid = await pp.call(card, "4420123", call_id="cut-1")
    sched = pp.scheduler()
    await sched.answered(sid)
    await _run_until(pp, sched, T0 + 11)
    assert [c for c, _ in pp.control.cut] == ["cut-1"]
    # the Hangup its cut-off caused; AMI cannot tell it from the caller's
    cdr = await sched.hung_up(sid, T0 + 10.2, cause=16, ended_by="limit")
    assert cdr is not None
    assert cdr.ended_by == "credit"

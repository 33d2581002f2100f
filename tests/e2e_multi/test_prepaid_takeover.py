"""Two gateways, one Asterisk, card calls up: only the event owner of the Asterisk
debits them, and warns and cuts off the one that runs out (once), although the other
gateway served their AGI requests; kill -9 the owner and the other gateway adopts the
call still up and goes on debiting it with a newer epoch; once the calls end each card's
money is conserved to the minor unit and no increment was debited twice."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prepaid import keys
from prepaid.batches import BatchService, BatchSpec
from prepaid.cards import CardService
from prepaid.cdr import Cdr, CdrStore
from prepaid.clock import SystemClock
from prepaid.pins import PinHasher
from prepaid.rateplan_csv import parse_text
from prepaid.rateplan_store import RatePlanStore
from prepaid.rating import PlanSettings
from prepaid.replies import as_int, str_dict
from tests.e2e_multi.conftest import STAY_UP, Farm
from tests.e2e_multi.debit_audit import DebitAudit

START = 10_000  # cents; at one cent a second the call never runs out
SHORT = 8  # cents: 8 s of talk, a warning 4 s before the cut-off
PLAN_CSV = f"prefix,destination,rate,increments\n{STAY_UP},Test,0.60,1/1\n"


async def issue_cards(farm: Farm, *values: int) -> list[str]:
    clock = SystemClock()
    settings = PlanSettings("EUR", warn_seconds=4)
    await RatePlanStore(farm.redis, clock).save("std", settings,
                                                 parse_text(PLAN_CSV, settings).entries)
    batches = BatchService(farm.redis, PinHasher(b"multi-secret-0123456789"), clock)
    numbers = []
    for value in values:
        issued = await batches.create(BatchSpec(count=1, value=value, currency="EUR",
                                                plan="std", tenant="acme", sold=True))
        numbers.append(issued.cards[0].number)
    return numbers


async def session(farm: Farm, card: str, sid: str) -> dict[str, str]:
    return str_dict(await farm.redis.hgetall(keys.session(card, sid)))


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def test_the_owner_alone_debits_and_cuts_off_and_a_kill9_hands_calls_over(
    farm: Farm,
) -> None:
    card, short = await issue_cards(farm, START, SHORT)
    await farm.start("a")
    await farm.start("b")
    owner, _ = await farm.wait_owner(10.0)
    other = "b" if owner == "a" else "a"
    call = farm.place_card(other, card)  # the AGI requests go to the non-owner
    cut = farm.place_card(other, short)
    assert await farm.decided(call) == "ALLOW" and await farm.decided(cut) == "ALLOW"
    sid = keys.new_session_id(card, call.var(call.g2, "CALLGATE_LEASE"))

    async def debited_by(epoch_above: int, paid_above: int) -> bool:
        h = await session(farm, card, sid)
        return as_int(h.get("epoch")) > epoch_above and as_int(h.get("paid_s")) > paid_above

    await wait_for(lambda: debited_by(0, 2), 10.0)
    first = await session(farm, card, sid)
    assert first["origin"] == "sim" and first["state"] == "live"
    old_epoch = as_int(first.get("epoch"))
    await asyncio.wait_for(cut.ended.wait(), 20.0)  # the short card's call is cut off
    dead = farm.gateways[owner].proc
    assert dead is not None

    await farm.kill(owner)
    await farm.wait_owner(10.0, among=(other,))
    paid_at_kill = as_int((await session(farm, card, sid)).get("paid_s"))
    # the survivor adopts the call and debits on, with its newer epoch
    await wait_for(lambda: debited_by(old_epoch, paid_at_kill + 2), 10.0)
    farm.hang_up(call)

    store = CdrStore(farm.redis)
    cdrs: dict[str, Cdr] = {}
    async with asyncio.timeout(15):
        while len(cdrs) < 2:
            cdrs = {c.account: c async for c in store.iter_range(0, 4e9)}
            await asyncio.sleep(0.1)
    cards = CardService(farm.redis, SystemClock())
    for number, start in ((card, START), (short, SHORT)):
        got = await cards.get(number)
        assert got.balance + cdrs[number].charge == start, (number, got.balance)
        assert got.held == 0 and got.balance >= -1
    assert cdrs[short].ended_by == "credit"
    assert cdrs[card].session_id == sid and cdrs[card].billable_s >= 12
    assert cdrs[card].charge == cdrs[card].billable_s  # 1 cent a second, charged once

    survivor = farm.gateways[other].proc
    assert survivor is not None
    audit = DebitAudit.from_logs([dead.log_path, survivor.log_path])
    assert audit.double_debits == 0, audit.applied
    final_seq = as_int((await session(farm, card, sid)).get("seq"))
    seqs = audit.seqs(sid)
    assert seqs and seqs[-1] == final_seq and len(seqs) == len(set(seqs))
    assert len(audit.epochs[sid]) == 2  # debited under the old owner, then the new one
    events = survivor.log_events()
    assert any(e["event"] == "prepaid_adopted" and e.get("live") == 1 for e in events)
    # the non-owner never debited, warned or cut off while the owner was alive
    assert all(e["epoch"] > old_epoch for e in events if e["event"] == "prepaid_debited")
    acted = {name: [e["event"] for e in proc.log_events()
                    if e["event"] in ("prepaid_warning", "prepaid_cut_off")]
             for name, proc in ((owner, dead), (other, survivor))}
    assert acted == {owner: ["prepaid_warning", "prepaid_cut_off"], other: []}

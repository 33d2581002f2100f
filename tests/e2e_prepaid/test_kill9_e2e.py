"""Money conservation with the real daemon killed (SIGKILL) in the middle of card calls:
calls that hang up while it is down are settled after its restart, at their real end as the
`h` extension recorded it in AstDB, the others go on being debited; in the end balance +
CDR charges = the card's starting value, exactly."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.prepaid_end_records import END_FAMILY, parse_end
from prepaid.batches import BatchService, BatchSpec
from prepaid.cards import CardService
from prepaid.cdr import CdrStore
from prepaid.clock import SystemClock
from prepaid.pins import PinHasher
from prepaid.rateplan_csv import parse_text
from prepaid.rateplan_store import RatePlanStore
from prepaid.rating import PlanSettings
from sim.dialplan import ContextConfig
from tests.e2e.conftest import Stack
from tests.e2e_prepaid.conftest import ANSWER_SETS, H_SETS, PLAN_CSV, daemon_stack
from tests.support.servers import RedisServer

CALLS = 6
START = 120  # cents: at one cent a second the 6 calls share 20 s of talk


@pytest.fixture
async def stack(tmp_path: Path, redis_aof: RedisServer) -> AsyncIterator[Stack]:
    def contexts(agi: str) -> list[ContextConfig]:
        return [ContextConfig(
            "prepaid-out", agi=f"{agi}/authorize,tenant=shop1,direction=out,card=${{CARD}}",
            release_agi=f"{agi}/release,lease=${{CALLGATE_LEASE}}", maxsec_margin=30,
            h_sets=H_SETS, answer_sets=ANSWER_SETS,
        )]

    async with daemon_stack(tmp_path, redis_aof, seed=7, contexts=contexts) as st:
        yield st


async def test_kill9_mid_call_conserves_money(stack: Stack) -> None:
    r = stack.limits_redis
    clock = SystemClock()
    settings = PlanSettings("EUR", warn_seconds=0)
    await RatePlanStore(r, clock).save("std", settings, parse_text(PLAN_CSV, settings).entries)
    issued = await BatchService(r, PinHasher(b"kill9-secret-0123456789"), clock).create(
        BatchSpec(count=1, value=START, currency="EUR", plan="std", tenant="shop1", sold=True))
    card = issued.cards[0].number

    await stack.start_daemon()
    calls = [stack.sim.place_call("442071234567", context="prepaid-out",
                                  variables={"CARD": card}) for _ in range(CALLS)]
    decided = await asyncio.gather(*(stack.decided(c) for c in calls))
    assert all(d["CALLGATE_RESULT"] == "ALLOW" for d in decided), decided
    await asyncio.sleep(3.0)  # debited for a while

    await stack.kill_daemon()
    hung_at = {}
    for call in calls[:3]:  # these end while no gateway sees them
        hung_at[call.g2.uniqueid] = stack.sim.clock.now()
        stack.hang_up(call)
        await asyncio.sleep(0.3)
    await asyncio.sleep(1.0)
    astdb = stack.sim.world.astdb
    leases = {c.g2.uniqueid: c.var(c.g2, "CALLGATE_LEASE") for c in calls}
    recorded = astdb.family(END_FAMILY)
    assert set(recorded) == {leases[c.g2.uniqueid] for c in calls[:3]}
    # the third call's record is lost (an Asterisk without the h extension's Set(DB)):
    # it falls back to the end of its paid time, and says so
    astdb.delete(END_FAMILY, leases[calls[2].g2.uniqueid])
    restarted_at = stack.sim.clock.now()

    daemon = await stack.start_daemon()
    # Hang up the rest only once the new daemon's sweep has settled the three that ended
    # while it was down: that same pass saw the others up (a fixed wait was too short
    # for a daemon starting on a loaded machine, and they then ended unseen as well).
    ended_unseen = {c.g2.uniqueid for c in calls[:3]}
    async with asyncio.timeout(20):
        while not ended_unseen <= {e["call_id"] for e in daemon.log_events()
                                   if e["event"] == "prepaid_call_gone_unseen"}:
            await asyncio.sleep(0.1)
    for call in calls[3:]:
        if not call.ended.is_set():
            stack.hang_up(call)
    await asyncio.gather(*(asyncio.wait_for(c.ended.wait(), 10) for c in calls))

    cdrs = CdrStore(r)
    async with asyncio.timeout(15):
        while True:
            found = [c async for c in cdrs.iter_range(0, 4e9)]
            if len(found) == CALLS:
                break
            await asyncio.sleep(0.1)
    got = await CardService(r, clock).get(card)
    charges = sum(c.charge for c in found)
    assert got.balance + charges == START, (got.balance, charges)
    assert got.held == 0
    assert got.balance >= -1  # at most one increment (1 s = 1 cent) below zero
    assert sum(c.billable_s for c in found) >= 6 * 3  # every call ran and was charged
    assert len({c.session_id for c in found}) == CALLS  # each call settled once
    await stack.wait_in_use({("tenant_outbound", "shop1"): 0}, 10)
    assert stack.daemon is not None
    events = stack.daemon.log_events()
    resumed = [e for e in events if e["event"] == "prepaid_resumed"]
    assert resumed and resumed[-1]["live"] == CALLS  # the new daemon took the calls back
    gone = {e["call_id"] for e in events if e["event"] == "prepaid_call_gone_unseen"}
    assert gone == {c.g2.uniqueid for c in calls[:3]}  # ended unseen, settled once
    unknown = {e["call_id"] for e in events if e["event"] == "prepaid_end_unknown"}
    assert unknown == {calls[2].g2.uniqueid}, "\n".join(
        str(e) for e in events if e["event"].startswith(("prepaid_", "ami_", "release")))
    by_call = {c.call_id: c for c in found}
    for call in calls[:2]:  # charged their real duration, from the recorded end
        cdr = by_call[call.g2.uniqueid]
        record = parse_end(recorded[leases[call.g2.uniqueid]])
        assert record is not None and record.answered_ms  # answered before the kill
        end_ms = round(record.end * 1000)
        assert cdr.end_ms == end_ms, (cdr.end_ms, end_ms)
        assert abs(end_ms / 1000 - hung_at[call.g2.uniqueid]) < 0.5  # when it hung up,
        assert end_ms / 1000 < restarted_at - 0.5  # not when the gateway came back
        assert cdr.billable_s == math.ceil((cdr.end_ms - cdr.answer_ms) / 1000)  # 1/1 s
        assert cdr.charge == cdr.billable_s  # one cent a second
    # every record is gone: the sweep deleted those it used, `release` the others
    async with asyncio.timeout(5):
        while astdb.family(END_FAMILY):
            await asyncio.sleep(0.05)

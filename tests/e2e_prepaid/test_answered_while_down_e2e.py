"""A card call answered AND hung up entirely while the real daemon is down (SIGKILL before
the answer): after the restart it is charged its real answered duration, from the `h`
extension's AstDB record (end, Dial's ANSWEREDTIME_MS), once. And the dialplan's own limit
ending a call while the daemon is frozen (SIGSTOP) is `limit` in its CDR."""

from __future__ import annotations

import asyncio
import math
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.prepaid_end_records import END_FAMILY, parse_end
from prepaid.batches import BatchService, BatchSpec
from prepaid.cards import CardService
from prepaid.cdr import Cdr, CdrStore
from prepaid.clock import SystemClock
from prepaid.pins import PinHasher
from prepaid.rateplan_csv import parse_text
from prepaid.rateplan_store import RatePlanStore
from prepaid.rating import PlanSettings
from sim.agi_link import DTMF_VAR, AgiTarget
from sim.dialplan import ContextConfig
from sim.fastagi import FastAgiCall
from tests.e2e.conftest import Stack
from tests.e2e_prepaid.conftest import (
    ANSWER_SETS,
    H_END_OLD,
    H_SETS,
    RELEASE_ARGS,
    RING_S,
    daemon_stack,
)
from tests.support.servers import RedisServer

START = 500  # cents
# 0.60 EUR a minute in 30/6 increments: the first 30 s are paid as a whole; 4473 per second
PLAN_CSV = "prefix,destination,rate,increments\n44,UK,0.60,30/6\n4473,UK m,0.60,1/1\n"
PIN_SECRET = "down-secret-0123456789"
BACKSTOP_S = 1  # prepaid-backstop: TIMEOUT(absolute) = CALLGATE_MAXSEC + this


@pytest.fixture
async def stack(tmp_path: Path, redis_aof: RedisServer) -> AsyncIterator[Stack]:
    def contexts(agi: str) -> list[ContextConfig]:
        return [
            # an older dialplan: no Dial U(), the record holds the end and ANSWEREDTIME_MS
            ContextConfig(
                "prepaid-out", agi=f"{agi}/authorize,tenant=shop1,direction=out,card=${{CARD}}",
                release_agi=f"{agi}/release,lease=${{CALLGATE_LEASE}}", maxsec_margin=30,
                h_sets=(H_END_OLD,),
            ),
            # the example dialplan: Dial U() records the callee's answer
            ContextConfig(
                "prepaid-ivr", agi=f"{agi}/prepaid,tenant=shop1,direction=out",
                release_agi=f"{agi}/release{RELEASE_ARGS}", maxsec_margin=30,
                h_sets=H_SETS, answer_sets=ANSWER_SETS,
            ),
            ContextConfig(
                "prepaid-backstop",
                agi=f"{agi}/authorize,tenant=shop1,direction=out,card=${{CARD}}",
                release_agi=f"{agi}/release{RELEASE_ARGS}", timeout_margin=BACKSTOP_S,
                h_sets=H_SETS, answer_sets=ANSWER_SETS,
            ),
        ]

    async with daemon_stack(tmp_path, redis_aof, seed=11,
                            prepaid=f'pin_secret = "{PIN_SECRET}"', contexts=contexts) as st:
        yield st


async def _cdrs(r: aioredis.Redis, at_least: int = 1) -> list[Cdr]:
    async with asyncio.timeout(15):
        while True:
            found = [c async for c in CdrStore(r).iter_range(0, 4e9)]
            if len(found) >= at_least:
                return found
            await asyncio.sleep(0.1)


async def _late_release(stack: Stack, lease: str) -> None:
    """The `release` AGI once more (a retried h extension): it must not charge again."""
    target = AgiTarget.parse(f"agi://127.0.0.1:{stack.agi_port}/release")
    env = {"agi_request": target.url, "agi_extension": "h", "agi_uniqueid": "late.1"}
    await FastAgiCall(target.host, target.port, target.script, env, {},
                      args=(f"lease={lease}",)).run()


async def _card(r: aioredis.Redis, plan_csv: str, value: int) -> tuple[str, str]:
    clock = SystemClock()
    settings = PlanSettings("EUR", warn_seconds=0)
    await RatePlanStore(r, clock).save("std", settings, parse_text(plan_csv, settings).entries)
    issued = await BatchService(r, PinHasher(PIN_SECRET.encode()), clock).create(
        BatchSpec(count=1, value=value, currency="EUR", plan="std", tenant="shop1", sold=True))
    return issued.cards[0].number, issued.cards[0].pin


async def test_call_answered_and_ended_while_the_gateway_was_down_is_charged_once(
    stack: Stack,
) -> None:
    r = stack.limits_redis
    clock = SystemClock()
    card, _ = await _card(r, PLAN_CSV, START)
    ivr_card, pin = await _card(r, PLAN_CSV, START)
    short_card, _ = await _card(r, PLAN_CSV, 3)  # 3 s at one cent a second

    await stack.start_daemon()
    assert RING_S["4471"] == RING_S["4473"] == 3
    # through the IVR, which answers the caller's channel before the Dial
    ivr = stack.sim.place_call("447312345678", context="prepaid-ivr",  # rings 3 s
                               variables={DTMF_VAR: f"{ivr_card}#{pin}#447312345678#"})
    call = stack.sim.place_call("447112345678", context="prepaid-out",  # rings 3 s
                                variables={"CARD": card})
    # and one the dialplan's backstop ends (TIMEOUT(absolute) = 3 + 1 s) while it is down
    short = stack.sim.place_call("447312345678", context="prepaid-backstop",
                                 variables={"CARD": short_card})
    decided = await stack.decided(call)
    assert decided["CALLGATE_RESULT"] == "ALLOW", decided
    assert (await stack.decided(ivr, timeout=15))["CALLGATE_RESULT"] == "ALLOW"
    assert (await stack.decided(short))["CALLGATE_MAXSEC"] == "3"
    lease, ivr_lease = decided["CALLGATE_LEASE"], ivr.var(ivr.g2, "CALLGATE_LEASE")
    await stack.kill_daemon()
    assert call.c1 is not None and call.c1.answered_at is None  # killed before the answer
    assert ivr.c1 is None or ivr.c1.answered_at is None

    async with asyncio.timeout(10):  # answered while nobody watched
        while not (call.answered and ivr.answered):
            await asyncio.sleep(0.02)
    await asyncio.sleep(2.0)  # 2 s of talk
    stack.hang_up(call)
    stack.hang_up(ivr)
    await asyncio.wait_for(call.ended.wait(), 10)
    await asyncio.wait_for(ivr.ended.wait(), 10)
    await asyncio.wait_for(short.ended.wait(), 10)
    record = parse_end(stack.sim.world.astdb.get(END_FAMILY, lease) or "")
    assert record is not None and record.answered_ms is not None
    assert 1500 <= record.answered_ms <= 3500
    ivr_record = parse_end(stack.sim.world.astdb.get(END_FAMILY, ivr_lease) or "")
    assert ivr_record is not None and ivr_record.answered_ms is not None

    restarted = await stack.start_daemon()
    found = {c.account: c for c in await _cdrs(r, 3)}
    assert len(found) == 3
    # nobody saw who ended these; the one that lasted its CALLGATE_MAXSEC from the
    # decision was the dialplan's limit
    assert [found[c].ended_by for c in (card, ivr_card, short_card)] == [
        "system", "system", "limit"]
    short_cdr = found[short_card]
    assert 1 <= short_cdr.charge == short_cdr.billable_s <= 2
    short_info = await CardService(r, clock).get(short_card)
    assert short_info.balance + short_cdr.charge == 3 and short_info.held == 0
    # the IVR's call: ANSWEREDTIME_MS ran from the IVR's answer, before the decision, so
    # it would charge the 3 s of ringing too; the Dial U() record says when the callee
    # answered, and the charge starts there
    ivr_cdr = found[ivr_card]
    assert ivr_cdr.end_ms == round(ivr_record.end * 1000)
    assert ivr_record.answered_ms > ivr_cdr.end_ms - ivr_cdr.start_ms
    assert ivr_record.exact and ivr_record.callee_answered is not None
    assert ivr_cdr.answer_ms == round(ivr_record.callee_answered * 1000)
    assert ivr_cdr.answer_ms - ivr_cdr.start_ms >= 2500  # the ringing is not charged
    assert ivr_cdr.billable_s == ivr_cdr.charge == math.ceil(
        (ivr_cdr.end_ms - ivr_cdr.answer_ms) / 1000) <= 4  # 2 s of talk, not 5
    ivr_info = await CardService(r, clock).get(ivr_card)
    assert ivr_info.balance + ivr_cdr.charge == START and ivr_info.held == 0
    cdrs = [found[card]]
    cdr = cdrs[0]
    assert cdr.end_ms == round(record.end * 1000)
    assert cdr.answer_ms == round(record.end * 1000) - record.answered_ms
    assert cdr.duration_s == math.ceil(record.answered_ms / 1000)
    # rated by the plan: 30/6 increments bill the first 30 s whole, at one cent a second
    assert (cdr.billable_s, cdr.charge) == (30, 30)
    got = await CardService(r, clock).get(card)
    assert got.balance + cdr.charge == START
    assert got.held == 0
    async with asyncio.timeout(5):  # the record is used up
        while stack.sim.world.astdb.get(END_FAMILY, lease) is not None:
            await asyncio.sleep(0.05)

    # once: a late `release`, then another sweep (AMI cut: the gateway logs in again and
    # checks its calls against the new listing) change nothing
    await _late_release(stack, lease)
    for session in list(stack.sim.ami_sessions):
        await session.close()
    async with asyncio.timeout(10):
        while sum(e["event"] == "ami_channels_resynced" for e in restarted.log_events()) < 2:
            await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    assert sorted(c.session_id for c in await _cdrs(r)) == sorted(
        [cdr.session_id, ivr_cdr.session_id, short_cdr.session_id])
    assert (await CardService(r, clock).get(card)).balance == START - 30
    said = {e["event"]: e for e in restarted.log_events()}
    assert "prepaid_end_unknown" not in said
    from_record = {e["call_id"] for e in restarted.log_events()
                   if e["event"] == "prepaid_answer_from_end_record"}
    assert from_record == {call.g2.uniqueid, ivr.g2.uniqueid, short.g2.uniqueid}


async def test_frozen_gateway_leaves_the_cut_off_to_the_dialplan_limit(stack: Stack) -> None:
    """SIGSTOP: the gateway cannot cut the call off at the end of the credit; the
    dialplan's TIMEOUT(absolute) ends it, and the CDR says so once the gateway runs again."""
    r = stack.limits_redis
    card, _ = await _card(r, "prefix,destination,rate,increments\n44,UK,0.60,1/1\n", 3)
    daemon = await stack.start_daemon()
    call = stack.sim.place_call("442071234567", context="prepaid-backstop",
                                variables={"CARD": card})
    decided = await stack.decided(call)
    assert (decided["CALLGATE_RESULT"], decided["CALLGATE_MAXSEC"]) == ("ALLOW", "3")
    async with asyncio.timeout(10):
        while not call.answered:
            await asyncio.sleep(0.02)
    await asyncio.sleep(1.0)  # debited for a second, 2 s before its credit ends
    daemon.signal(signal.SIGSTOP)
    try:
        await asyncio.wait_for(call.ended.wait(), 3 + BACKSTOP_S + 3)
        await asyncio.sleep(0.5)
    finally:
        daemon.signal(signal.SIGCONT)
    cdr = (await _cdrs(r))[0]
    assert cdr.ended_by == "limit"
    # the end is when the woken gateway read the Hangup (a little after it happened)
    assert 3 + BACKSTOP_S - 1 <= cdr.duration_s <= 3 + BACKSTOP_S + 2
    got = await CardService(r, SystemClock()).get(card)
    assert got.balance + cdr.charge == 3
    assert got.balance >= -1  # one increment at most below zero; the rest uncollected
    assert cdr.charge + cdr.uncollected == cdr.total

#!/usr/bin/env python3
"""Prepaid live debit at scale: 10,000 concurrent metered calls ticked by one gateway
process (one core), on the real clock, against a private redis-server.

What it does, in one run:
1. raw Redis throughput: EVALSHA of a trivial script, then of debit.lua alone (one step per
   call, pipelined 1,000 at a time, one client): the ceiling the ticker is compared with;
2. a 100,000-prefix rate plan: CSV parse, store, load into a gateway, look-up + price cost;
3. the ticker alone: 1,000 live calls all due at once on a hand-moved clock, CPU per debit
   with the asyncio transport and with ThreadedDebits;
4. 10,000 calls on 2,000 cards (5 calls share each card; cards worth 0.90 to 2.00 at one
   minor unit a second, so about half of them run out), authorized, answered over 5 s,
   talking 10-25 s unless their card runs out first; 80 % on 1/1 increments (a debit
   every second: the worst case), the rest on 30/6. The `DebitScheduler` (ThreadedDebits
   transport) debits them all; when a card runs out its calls are cut off and hang up
   0.1 s later (the AMI Hangup). Cut-off lateness = when `CallControl.cut_off` was called
   minus the end of the call's paid time (read back from Redis). Real clock, not a scaled
   one: a scaled clock would multiply the debits per real second by the scale, and the
   point is whether one process keeps 10,000 real calls on time;
5. money conservation on every card: start = balance + held + sum of CDR charges.

Prints a human summary, then (last line) a JSON object of the figures.
Run: `.venv/bin/python bench/prepaid.py [--calls 10000] [--ramp 5] [--min 10] [--max 25]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file is called prepaid.py: keep its folder off sys.path so `prepaid` is the package
_HERE = str(Path(__file__).resolve().parent)
_ROOT = str(Path(__file__).resolve().parent.parent)
sys.path[:] = [p for p in sys.path if p not in (_HERE, "")]
sys.path.insert(0, _ROOT)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import redis.asyncio as aioredis  # noqa: E402
import structlog  # noqa: E402

from prepaid import keys  # noqa: E402
from prepaid.batches import BatchService, BatchSpec  # noqa: E402
from prepaid.cdr import CdrStore  # noqa: E402
from prepaid.clock import ManualClock, SystemClock  # noqa: E402
from prepaid.control import WarnTarget  # noqa: E402
from prepaid.debit import debit_args, debit_keys  # noqa: E402
from prepaid.debit_transport import AsyncDebits, ThreadedDebits  # noqa: E402
from prepaid.pins import PinHasher  # noqa: E402
from prepaid.rateplan_csv import parse_text  # noqa: E402
from prepaid.rateplan_store import RatePlanCache, RatePlanStore  # noqa: E402
from prepaid.rating import PlanSettings  # noqa: E402
from prepaid.replies import as_int, str_dict  # noqa: E402
from prepaid.scheduler import DebitScheduler  # noqa: E402
from prepaid.scripts import PrepaidScripts  # noqa: E402
from prepaid.sessions import AuthorizeRequest, SessionService  # noqa: E402
from tests.support.servers import redis_server  # noqa: E402

CALLS_PER_CARD = 5
PLAN_CSV = "prefix,destination,rate,increments\n44,UK,0.60,1/1\n33,France,0.60,30/6\n"


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def raw_redis(r: aioredis.Redis, scripts: PrepaidScripts, n: int) -> dict[str, float]:
    trivial = r.register_script("return 1")
    await trivial()
    t = time.perf_counter()
    for _ in range(n // 1000):
        async with r.pipeline(transaction=False) as pipe:
            for _ in range(1000):
                pipe.evalsha(trivial.sha, 0)
            await pipe.execute()
    trivial_ops = n / (time.perf_counter() - t)

    # debit.lua alone: one live session on a rich card, one 1 s step per call
    settings = PlanSettings(currency="EUR")
    store = RatePlanStore(r, SystemClock())
    await store.save("rawplan", settings, parse_text(PLAN_CSV, settings).entries)
    plan = await store.load("rawplan")
    entry = plan.lookup("44")
    assert entry is not None
    tariff = plan.tariff(entry)
    acct, sid = "rawbench", "rawbench~00000000"
    await r.hset(keys.card(acct), mapping={"balance": 10**12, "status": "active",
                                           "currency": "EUR"})
    await r.hset(keys.session(acct, sid), mapping={
        "state": "live", "seq": 0, "paid_s": 0, "exact": 0, "charged": 0, "free_s": 0,
        "bundle": "0", "fee": 0, "tax_bp": "", "tax_fixed": 0, "cut": "",
    })
    await scripts.load()
    now_ms = int(time.time() * 1000)
    calls = [debit_args(tariff, None, False, i, i, now_ms - 10**7, now_ms, i + 1)
             for i in range(n)]
    k = debit_keys(acct, sid)
    sha = scripts.debit.sha
    t = time.perf_counter()
    for i in range(0, n, 1000):
        async with r.pipeline(transaction=False) as pipe:
            for args in calls[i:i + 1000]:
                pipe.evalsha(sha, 2, *k, *args)
            await pipe.execute()
    debit_ops = n / (time.perf_counter() - t)
    paid = as_int(await r.hget(keys.session(acct, sid), "paid_s"))
    assert paid == n, paid
    return {"evalsha_trivial_per_s": trivial_ops, "debit_script_per_s": debit_ops}


async def plan_bench(r: aioredis.Redis, prefixes: int) -> dict[str, float]:
    rng = random.Random(1)
    seen: set[str] = set()
    while len(seen) < prefixes:
        seen.add(str(rng.randint(1, 10**rng.randint(3, 9))))
    rows = "".join(f"{p},Dest {p},0.0{rng.randint(10, 99)},30/6\n" for p in seen)
    text = "prefix,destination,rate,increments\n" + rows
    settings = PlanSettings(currency="EUR")
    t0 = time.perf_counter()
    parsed = parse_text(text, settings)
    t1 = time.perf_counter()
    store = RatePlanStore(r, SystemClock())
    await store.save("big", settings, parsed.entries)
    t2 = time.perf_counter()
    plan = await store.load("big")
    t3 = time.perf_counter()
    sample = sorted(seen)[:: max(1, len(seen) // 1000)]
    numbers = [f"{rng.choice(sample)}{rng.randint(10**5, 10**6)}" for _ in range(20000)]
    t4 = time.perf_counter()
    for num in numbers:
        e = plan.lookup(num)
        assert e is not None
        plan.tariff(e).price(0, 95)
    t5 = time.perf_counter()
    return {
        "plan_rows": len(plan),
        "plan_parse_s": t1 - t0,
        "plan_store_s": t2 - t1,
        "plan_load_s": t3 - t2,
        "rate_us": (t5 - t4) / len(numbers) * 1e6,
    }


async def tick_cost(
    r: aioredis.Redis, url: str, sessions: int, rounds: int = 5
) -> dict[str, float]:
    """The ticker alone: `sessions` live 1/1 calls on rich cards, every one due each second
    of a hand-moved clock; CPU and wall time of run_due() per debit, nothing else running."""
    clock = ManualClock(time.time())
    settings = PlanSettings(currency="EUR")
    scripts = PrepaidScripts.register(r)
    store = RatePlanStore(r, clock)
    await store.save("tick", settings, parse_text(PLAN_CSV, settings).entries)
    issued = await BatchService(r, PinHasher(b"bench-secret-0123456789"), clock, scripts).create(
        BatchSpec(count=sessions // CALLS_PER_CARD, value=10**9, currency="EUR", plan="tick",
                  tenant="tick", sold=True))
    svc = SessionService(r, RatePlanCache(store, clock), clock, gateway="tick",
                         scripts=scripts)
    threaded = ThreadedDebits.from_url(url)
    sched = DebitScheduler(svc, Control(), clock, renew_lead_s=2.0)
    sids = []
    for i in range(0, sessions, 500):
        reqs = [AuthorizeRequest(issued.cards[j % len(issued.cards)].number, "4420123",
                                 f"t{j}") for j in range(i, min(sessions, i + 500))]
        sids += [a.session_id for a in await asyncio.gather(*(svc.authorize(q) for q in reqs))]
    for sid in sids:
        await sched.answered(sid)
    await sched.run_due()  # first steps
    out: dict[str, float] = {"tick_sessions": sessions}
    for name in ("async", "thread"):
        cpu: list[float] = []
        wall: list[float] = []
        sched._transport = threaded if name == "thread" else AsyncDebits(svc)
        for _ in range(rounds):
            clock.advance(1.0)
            c0, w0 = time.process_time(), time.perf_counter()
            n = await sched.run_due()
            cpu.append((time.process_time() - c0) / n * 1e6)
            wall.append((time.perf_counter() - w0) * 1000)
        out[f"tick_cpu_us_{name}"] = statistics.median(cpu)
        out[f"tick_run_ms_{name}"] = statistics.median(wall)
    for sid in sids:
        await sched.hung_up(sid)
    await sched.stop()
    await threaded.close()
    return out


@dataclass
class Control:
    cut_at: dict[str, float] = field(default_factory=dict)
    events: dict[str, asyncio.Event] = field(default_factory=dict)
    warnings: int = 0

    async def cut_off(self, call_id: str) -> None:
        self.cut_at.setdefault(call_id, time.time())
        ev = self.events.get(call_id)
        if ev is not None:
            ev.set()

    async def play_warning(self, call_id: str, to: WarnTarget) -> None:
        self.warnings += 1


async def calls_bench(
    r: aioredis.Redis, url: str, args: argparse.Namespace
) -> dict[str, Any]:
    clock = SystemClock()
    rng = random.Random(42)
    settings = PlanSettings(currency="EUR", warn_seconds=10)
    scripts = PrepaidScripts.register(r)
    await scripts.load()
    store = RatePlanStore(r, clock)
    await store.save("bench", settings, parse_text(PLAN_CSV, settings).entries)
    n_cards = args.calls // CALLS_PER_CARD
    batches = BatchService(r, PinHasher(b"bench-secret-0123456789"), clock, scripts)
    cards: dict[str, int] = {}
    t0 = time.perf_counter()
    for value in (90, 110, 130, 160, 200):
        issued = await batches.create(BatchSpec(
            count=n_cards // 5, value=value, currency="EUR", plan="bench", tenant="bench",
            sold=True))
        cards.update({c.number: value for c in issued.cards})
    cards_s = time.perf_counter() - t0
    card_ids = list(cards)

    svc = SessionService(r, RatePlanCache(store, clock), clock, gateway="bench",
                         scripts=scripts)
    control = Control()
    # debits from their own thread and connection: call set-ups and hangups crowding the
    # event loop cannot delay them (see prepaid/debit_transport.py)
    transport = ThreadedDebits.from_url(url) if args.transport == "thread" else None
    sched = DebitScheduler(svc, control, clock, renew_lead_s=2.0, coalesce_s=0.25,
                           batch_size=1000, transport=transport)
    plans: list[tuple[str, str, float, float]] = []  # session, call id, answer delay, talk
    t0 = time.perf_counter()
    for i in range(0, args.calls, 500):
        reqs = []
        for j in range(i, min(args.calls, i + 500)):
            dest = "4420" if rng.random() < 0.8 else "3312"
            reqs.append(AuthorizeRequest(card_ids[j % len(card_ids)], f"{dest}{j:06d}",
                                         f"call-{j}"))
        auths = await asyncio.gather(*(svc.authorize(q) for q in reqs))
        for q, a in zip(reqs, auths, strict=True):
            assert a.allowed, a
            plans.append((a.session_id, q.call_id, rng.uniform(0, args.ramp),
                          rng.uniform(args.min, args.max)))
    authorize_s = time.perf_counter() - t0

    peak = 0
    hangup_errors = 0

    async def call(sid: str, call_id: str, delay: float, talk: float, start: float) -> None:
        nonlocal hangup_errors
        control.events[call_id] = ev = asyncio.Event()
        await asyncio.sleep(max(0.0, start + delay - time.time()))
        await sched.answered(sid)
        try:
            await asyncio.wait_for(ev.wait(), talk)
            await asyncio.sleep(0.1)  # the AMI Hangup after our cut-off
        except TimeoutError:
            pass
        if await sched.hung_up(sid) is None:
            hangup_errors += 1

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, sched.live_count)
            await asyncio.sleep(0.2)

    runner = sched.start()
    sampler = asyncio.create_task(sample())
    start = time.time()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(call(*p, start) for p in plans))
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    sampler.cancel()
    await sched.stop()
    assert runner.done()
    if transport is not None:
        await transport.close()

    # cut-off lateness against the paid end stored with each session
    late: list[float] = []
    by_call = {c: s for s, c, _, _ in plans}
    async with r.pipeline(transaction=False) as pipe:
        cut_calls = list(control.cut_at)
        for c in cut_calls:
            sid = by_call[c]
            pipe.hmget(keys.session(keys.split_session_id(sid)[0], sid), ["answer_ms", "paid_s"])
        rows = await pipe.execute()
    for c, (answer_ms, paid_s) in zip(cut_calls, rows, strict=True):
        paid_end = (as_int(answer_ms) + as_int(paid_s) * 1000) / 1000
        late.append(control.cut_at[c] - paid_end)

    # money conservation on every card
    charges: dict[str, int] = defaultdict(int)
    n_cdrs = 0
    async for cdr in CdrStore(r, scripts).iter_range(0, 4e9):
        charges[cdr.account] += cdr.charge
        n_cdrs += 1
    error = 0
    floor_breaches = 0
    async with r.pipeline(transaction=False) as pipe:
        for cid in card_ids:
            pipe.hgetall(keys.card(cid))
        card_rows = await pipe.execute()
    for cid, raw in zip(card_ids, card_rows, strict=True):
        h = str_dict(raw)
        balance, held = as_int(h.get("balance")), as_int(h.get("held"))
        error += abs(cards[cid] - (balance + held + charges[cid]))
        if balance < -6:  # the dearest increment: 6 s at 1 minor unit a second
            floor_breaches += 1

    decided = [ms / 1000 for ms in sched.stats.cut_late_ms]
    runs = list(sched.stats.runs)
    run_ms = [s * 1000 for _, s in runs]
    debits = sum(n for n, _ in runs)
    busy = sum(s for _, s in runs)
    return {
        "sessions": args.calls,
        "peak_live": peak,
        "cards": len(card_ids),
        "cards_create_s": cards_s,
        "authorize_per_s": args.calls / authorize_s,
        "debits": debits,
        "debit_us": busy / debits * 1e6 if debits else 0.0,
        "debits_per_busy_s": debits / busy if busy else 0.0,
        "tick_runs": len(runs),
        "tick_ms_p50": pct(run_ms, 50),
        "tick_ms_p99": pct(run_ms, 99),
        "tick_ms_max": max(run_ms, default=0.0),
        "cut_offs": len(late),
        "cutoff_late_p50_s": pct(late, 50),
        "cutoff_late_p99_s": pct(late, 99),
        "cutoff_late_max_s": max(late, default=0.0),
        "cutoff_early": sum(1 for x in late if x < -0.001),
        "cut_decided_late_p99_s": pct(decided, 99),
        "cut_decided_late_p50_s": pct(decided, 50),
        "warnings": control.warnings,
        "cdrs": n_cdrs,
        "money_error_minor_units": error,
        "floor_breaches": floor_breaches,
        "hangups_deferred": hangup_errors,
        "unsettled_at_end": sched.unsettled,
        "cpu_s": cpu_s,
        "wall_s": wall_s,
        "cpu_share": cpu_s / wall_s,
    }


async def main(args: argparse.Namespace, url: str) -> dict[str, Any]:
    # a blocking pool: 10,000 call tasks wait for one of 200 connections, as a gateway would
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=200, timeout=30)
    r = aioredis.Redis(connection_pool=pool)
    try:
        scripts = PrepaidScripts.register(r)
        t = time.perf_counter()
        raw = await raw_redis(r, scripts, 20_000)
        print(f"[raw redis {time.perf_counter() - t:.1f} s]", file=sys.stderr)
        t = time.perf_counter()
        plan = await plan_bench(r, args.prefixes)
        print(f"[plan {time.perf_counter() - t:.1f} s]", file=sys.stderr)
        await r.flushall()
        t = time.perf_counter()
        tick = await tick_cost(r, url, args.tick_sessions)
        print(f"[tick cost {time.perf_counter() - t:.1f} s]", file=sys.stderr)
        await r.flushall()
        calls = await calls_bench(r, url, args)
    finally:
        await r.aclose()
    return {**raw, **plan, **tick, **calls}


def run() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--ramp", type=float, default=5.0, help="answers spread over s")
    ap.add_argument("--min", type=float, default=10.0, help="shortest talk, s")
    ap.add_argument("--max", type=float, default=25.0, help="longest talk, s")
    ap.add_argument("--prefixes", type=int, default=100_000)
    ap.add_argument("--tick-sessions", type=int, default=1_000)
    ap.add_argument("--transport", choices=("thread", "async"), default="thread",
                    help="how the ticker sends debits (prepaid.debit_transport)")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as srv:
        res = asyncio.run(main(args, srv.url))
    print(f"raw Redis: EVALSHA trivial {res['evalsha_trivial_per_s']:,.0f}/s, "
          f"debit.lua alone {res['debit_script_per_s']:,.0f}/s (pipelined, one client)")
    print(f"rate plan: {res['plan_rows']:,} prefixes parsed in {res['plan_parse_s']:.2f} s, "
          f"stored in {res['plan_store_s']:.2f} s, loaded in {res['plan_load_s']:.2f} s; "
          f"look-up + price {res['rate_us']:.1f} us")
    print(f"cards: {res['cards']:,} created in {res['cards_create_s']:.2f} s; "
          f"authorize {res['authorize_per_s']:,.0f}/s")
    print(f"calls: {res['sessions']:,} (peak {res['peak_live']:,} live at once), "
          f"{res['debits']:,} debits in {res['tick_runs']:,} ticker runs")
    print(f"ticker alone ({res['tick_sessions']:,} calls due at once), per debit: "
          f"{res['tick_cpu_us_async']:.1f} us CPU with the asyncio client "
          f"({res['tick_run_ms_async']:.0f} ms per run), "
          f"{res['tick_cpu_us_thread']:.1f} us CPU in this process with ThreadedDebits "
          f"({res['tick_run_ms_thread']:.0f} ms per run)")
    print(f"debit cost {res['debit_us']:.1f} us each in the ticker "
          f"({res['debits_per_busy_s']:,.0f}/s busy = "
          f"{res['debits_per_busy_s'] / res['debit_script_per_s']:.0%} of debit.lua alone); "
          f"ticker run p50 {res['tick_ms_p50']:.1f} ms, p99 {res['tick_ms_p99']:.1f} ms, "
          f"max {res['tick_ms_max']:.1f} ms")
    print(f"cut-offs: {res['cut_offs']:,}, late p50 {res['cutoff_late_p50_s']:.3f} s, "
          f"p99 {res['cutoff_late_p99_s']:.3f} s, max {res['cutoff_late_max_s']:.3f} s, "
          f"early {res['cutoff_early']} (decided: p50 {res['cut_decided_late_p50_s']:.3f} s, "
          f"p99 {res['cut_decided_late_p99_s']:.3f} s "
          f"after the paid end); warnings {res['warnings']:,}")
    print(f"money: {res['cdrs']:,} CDRs ({res['hangups_deferred']} hangups deferred, "
          f"{res['unsettled_at_end']} unsettled at the end), "
          f"conservation error {res['money_error_minor_units']} "
          f"minor units, cards below -1 increment: {res['floor_breaches']}")
    print(f"gateway process: {res['cpu_s']:.1f} s CPU over {res['wall_s']:.1f} s "
          f"({res['cpu_share']:.0%} of one core)")
    print(json.dumps({
        "sessions": res["sessions"],
        "tick_ms_p99": round(res["tick_ms_p99"], 2),
        "cutoff_late_p99_s": round(res["cutoff_late_p99_s"], 3),
        "money_error_minor_units": res["money_error_minor_units"],
        "peak_live": res["peak_live"],
        "debit_cpu_us": round(res["tick_cpu_us_thread"], 1),
        "debit_cpu_us_async": round(res["tick_cpu_us_async"], 1),
        "debit_script_per_s": round(res["debit_script_per_s"]),
        "evalsha_trivial_per_s": round(res["evalsha_trivial_per_s"]),
        "cutoff_late_p50_s": round(res["cutoff_late_p50_s"], 3),
        "rate_us": round(res["rate_us"], 2),
        "plan_import_s": round(res["plan_parse_s"] + res["plan_store_s"], 2),
        "cpu_share": round(res["cpu_share"], 2),
    }))


if __name__ == "__main__":
    run()

"""Invariant 2 under load and faults: 50 concurrent calls on one small card, random
hang-ups, and the gateway killed mid-run (or Redis killed -9 and restarted from its AOF).

After everything has ended: starting balance = balance + sum of CDR charges + held (0),
to the minor unit; the balance never went below minus one increment; every call has exactly
one CDR and no debit was applied twice.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
import redis.asyncio as aioredis

from prepaid.batches import BatchService, BatchSpec
from prepaid.cards import CardService
from prepaid.clock import ScaledClock
from prepaid.pins import PinHasher
from prepaid.rateplan_csv import parse_text
from prepaid.rateplan_store import RatePlanStore
from prepaid.rating import PlanSettings
from tests.prepaid.callsim import Shop, cdrs_of, client
from tests.prepaid.conftest import SECRET
from tests.support.servers import RedisServer

CALLS = 50
START = 900  # minor units: about 18 s of the 50 calls together
SCALE = 25.0  # one real second is 25 s of call time
# 1 minor unit a second; the dearest increment is 6 s (30/6): the most a card may go below 0
PLAN = "prefix,rate,increments\n44,0.60,1/1\n33,0.60,30/6\n"
MAX_INCREMENT_COST = 6


async def setup_shop(url: str, transport: str = "async") -> Shop:
    r = client(url)
    clock = ScaledClock(SCALE)
    settings = PlanSettings(currency="EUR", warn_seconds=0)
    await RatePlanStore(r, clock).save("std", settings, parse_text(PLAN, settings).entries)
    issued = await BatchService(r, PinHasher(SECRET), clock).create(BatchSpec(
        count=1, value=START, currency="EUR", plan="std", tenant="shop1", sold=True))
    await r.aclose()
    return Shop(url, clock, issued.cards[0].number, transport=transport)


async def check_invariants(shop: Shop) -> None:
    r = client(shop.url)
    card = await CardService(r, shop.clock).get(shop.card)
    await r.aclose()
    cdrs = await cdrs_of(shop.url)
    charges = sum(c.charge for c in cdrs)
    assert card.held == 0
    assert card.balance + charges + card.held == START, (card.balance, charges)
    assert shop.min_balance >= -MAX_INCREMENT_COST, shop.min_balance
    per_session = Counter(c.session_id for c in cdrs)
    assert sorted(per_session) == sorted(shop.session_ids)
    assert set(per_session.values()) == {1}  # one CDR per call, none twice
    for c in cdrs:
        assert 0 <= c.charge <= c.total and c.charge + c.uncollected == c.total
    assert any(c.ended_by == "credit" for c in cdrs)  # the card did run out
    assert len(shop.session_ids) + shop.denied == CALLS


async def run_shop(shop: Shop, fault: asyncio.Task[None] | None, rng: random.Random) -> None:
    stop = asyncio.Event()
    watcher = asyncio.create_task(shop.watch_balance(stop))
    calls = [asyncio.create_task(shop.call(i, rng, "4420" if i % 3 else "3312"))
             for i in range(CALLS)]
    await asyncio.gather(*calls)
    if fault is not None:
        await fault
    await shop.stop_gateway()
    stop.set()
    await watcher


@pytest.mark.parametrize("transport", ["async", "thread"])
async def test_gateway_killed_mid_run_conserves_money(
    redis_proc: RedisServer, transport: str
) -> None:
    r = aioredis.Redis.from_url(redis_proc.url)
    await r.flushall()
    await r.aclose()
    shop = await setup_shop(redis_proc.url, transport)
    await shop.start_gateway()
    rng = random.Random(20240601)

    async def kill_and_restart() -> None:
        await shop.clock.sleep(9)
        shop.kill_gateway()
        await shop.clock.sleep(6)  # calls go on; hangups and answers queue up
        await shop.start_gateway()

    await run_shop(shop, asyncio.create_task(kill_and_restart()), rng)
    await check_invariants(shop)


@pytest.mark.parametrize("transport", ["async", "thread"])
async def test_redis_killed_and_restarted_from_aof_conserves_money(
    redis_aof: RedisServer, transport: str
) -> None:
    shop = await setup_shop(redis_aof.url, transport)
    await shop.start_gateway()
    rng = random.Random(7)

    async def kill_redis() -> None:
        await shop.clock.sleep(9)
        redis_aof.stop(kill=True)
        await asyncio.sleep(0.2)
        redis_aof.start()

    await run_shop(shop, asyncio.create_task(kill_redis()), rng)
    await check_invariants(shop)

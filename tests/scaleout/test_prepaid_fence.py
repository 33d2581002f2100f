"""Prepaid debits fenced by event ownership, on a real Redis and on the 3-master cluster:
two tickers (two gateways) share one Redis; the one that owns the call's Asterisk debits
it, a newer owner adopts it, and a debit stamped with the older epoch is refused without
moving money, so no increment is paid twice."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from gateway.redis_connect import connect_redis
from prepaid import keys
from prepaid.clock import ManualClock
from prepaid.debit import DebitReply, debit_args
from prepaid.rating import PlanSettings
from prepaid.scheduler import DebitScheduler, Fence
from tests.prepaid.conftest import FLAT_CSV, T0, Prepaid, make_prepaid
from tests.scaleout.conftest import ScriptLedger
from tests.support.redis_cluster import RedisClusterProcesses
from tests.support.servers import RedisServer

FENCE_SCRIPTS = {"prepaid/answer_seen.lua"}
AST = "ast1"


class Owners:
    """Who owns which Asterisk, as each gateway's EventOwnership would say."""

    def __init__(self) -> None:
        self.epochs: dict[str, dict[str, int]] = {"a": {}, "b": {}}

    def fence(self, gateway: str) -> Fence:
        return lambda origin: self.epochs[gateway].get(origin)


@pytest.fixture
def ledger() -> ScriptLedger:
    return ScriptLedger()


@pytest.fixture(params=["redis", "cluster"])
async def pp(request: pytest.FixtureRequest, ledger: ScriptLedger) -> AsyncIterator[Prepaid]:
    client: aioredis.Redis | RedisCluster
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_proc")
        client = aioredis.Redis.from_url(server.url)
        await client.flushall()
    else:
        cluster: RedisClusterProcesses = request.getfixturevalue("cluster")
        for node in cluster.nodes:
            if not node.running:
                cluster.restart(node)
        cluster.flushall()
        client = connect_redis(cluster.url, cluster=False, socket_timeout=2.0)
        assert isinstance(client, RedisCluster)
        ledger.watch(client)
    p = make_prepaid(client, ManualClock(T0))  # type: ignore[arg-type]
    await p.plan("std", FLAT_CSV, PlanSettings(currency="EUR"))
    try:
        yield p
    finally:
        await client.aclose()


def ticker(pp: Prepaid, owners: Owners, gateway: str) -> DebitScheduler:
    return pp.scheduler(fence=owners.fence(gateway))


async def run(pp: Prepaid, seconds: int, *scheds: DebitScheduler) -> None:
    for _ in range(seconds):
        pp.clock.advance(1)
        for s in scheds:
            await s.run_due()
            await s.idle()


async def test_a_stale_owner_is_fenced_and_the_new_owner_debits_each_second_once(
    pp: Prepaid,
) -> None:
    card, _ = await pp.card(100)
    owners = Owners()
    a, b = ticker(pp, owners, "a"), ticker(pp, owners, "b")
    owners.epochs["a"][AST] = 1
    sid = await pp.call(card, "4420123", call_id="call-1")
    await a.answered(sid, origin=AST)
    await b.answered(sid, origin=AST)  # b does not own ast1: only notes the answer
    await run(pp, 10, a, b)
    assert (a.live_count, b.live_count) == (1, 0)
    rec = await pp.sessions.get(sid)
    assert (rec.origin, rec.epoch, rec.paid_s) == (AST, 1, 12)  # paid 2 s ahead

    # b takes ast1 over (epoch 2) while a, frozen, still believes it owns it (epoch 1)
    owners.epochs["b"][AST] = 2
    report = await b.resume()
    assert report.live == 1
    await run(pp, 5, b)
    before = await pp.cards.get(card)
    assert (await pp.sessions.get(sid)).epoch == 2
    await run(pp, 5, a)  # a wakes up: its debit carries epoch 1
    assert a.live_count == 0, "the fenced ticker stops ticking the call"
    after = await pp.cards.get(card)
    assert (after.balance, after.held) == (before.balance, before.held)
    assert b.live_count == 1

    # a debit replayed with the old epoch, as a ticker would build it, is refused as such
    rec = await pp.sessions.get(sid)
    assert rec.tariff is not None
    stale = debit_args(rec.tariff, None, False, rec.seq, rec.paid_s, rec.answer_ms,
                       int(pp.clock.now() * 1000), rec.paid_s + 5, 1, AST)
    (reply,) = await pp.sessions.debit_many([(card, sid, stale)])
    assert isinstance(reply, DebitReply) and reply.status == "fenced"
    assert (await pp.sessions.get(sid)).seq == rec.seq

    cdr = await b.hung_up(sid, pp.clock.now())
    assert cdr is not None
    end = await pp.cards.get(card)
    assert cdr.billable_s == 20 and cdr.charge == 20  # 1 cent a second, charged once
    assert end.balance + cdr.charge == 100 and end.held == 0


async def test_an_answer_while_nobody_owns_is_debited_from_the_real_answer(
    pp: Prepaid, ledger: ScriptLedger,
) -> None:
    card, _ = await pp.card(100)
    owners = Owners()
    b = ticker(pp, owners, "b")
    sid = await pp.call(card, "4420123", call_id="call-2")
    await b.answered(sid, origin=AST)  # the owner just died: noted, not ticked
    assert b.live_count == 0
    assert await pp.redis.hget(keys.session(card, sid), "answer_ms") is not None
    await run(pp, 4, b)
    owners.epochs["b"][AST] = 7  # b takes over 4 s later and adopts the call
    assert (await b.resume()).live == 1
    await run(pp, 6, b)
    cdr = await b.hung_up(sid, pp.clock.now())
    assert cdr is not None and cdr.billable_s == 10 and cdr.charge == 10
    assert (await pp.cards.get(card)).balance == 90
    if isinstance(pp.redis, RedisCluster):  # the scripts ran with keys of one slot
        assert {*FENCE_SCRIPTS, "prepaid/debit.lua"} <= ledger.exercised
        assert ledger.cross_slot() == {}


async def test_losing_ownership_stops_ticking_without_ending_the_call(pp: Prepaid) -> None:
    card, _ = await pp.card(100)
    owners = Owners()
    a = ticker(pp, owners, "a")
    owners.epochs["a"][AST] = 3
    sid = await pp.call(card, "4420123", call_id="call-3")
    await a.answered(sid, origin=AST)
    await run(pp, 3, a)
    assert a.disown(AST) == 1 and a.live_count == 0
    rec = await pp.sessions.get(sid)
    assert rec.state == "live" and not rec.cut
    assert pp.control.cut == []

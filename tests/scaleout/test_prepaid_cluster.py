"""prepaid/ on a real 3-master Redis Cluster: every money script through the services'
own code paths (several run in pipelines spanning masters), cards spread over masters,
and money conserved with calls sharing a card, debited by the ticker or all at once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from redis.asyncio.cluster import RedisCluster

from prepaid import keys
from prepaid.clock import ManualClock
from prepaid.debit import DebitReply, debit_args
from prepaid.rating import PlanSettings
from prepaid.scheduler import DebitScheduler
from prepaid.sessions import AuthorizeRequest
from prepaid.tenant_accounts import TenantAccounts
from prepaid.vouchers import RedeemStatus
from tests.prepaid.conftest import FLAT_CSV, T0, Prepaid, make_prepaid
from tests.scaleout.conftest import ScriptLedger
from tests.support.redis_cluster import RedisClusterProcesses

PREPAID_SCRIPTS = {f"prepaid/{n}.lua" for n in (
    "card_create", "card_credit", "fail_counter", "voucher_claim", "session_open", "debit",
    "settle", "cdr_append")}


@pytest.fixture
async def pp(cluster_client: RedisCluster) -> Prepaid:
    p = make_prepaid(cluster_client, ManualClock(T0))  # type: ignore[arg-type]
    await p.plan("std", FLAT_CSV, PlanSettings(currency="EUR"))
    return p


async def open_accounts(pp: Prepaid, count: int, balance: int) -> list[str]:
    """Prepaid accounts of `count` tenants (card_create.lua without a pipeline)."""
    accounts = TenantAccounts(pp.redis, pp.clock, pp.cards, pp.scripts)
    return [(await accounts.open(f"shop{i}", "EUR", "std", balance)).id
            for i in range(count)]


async def make_voucher(pp: Prepaid, code: str, value: int) -> None:
    """A voucher as VoucherService.create_batch stores it (that path needs a pipeline)."""
    await pp.redis.hset(keys.voucher(pp.hasher.voucher(code)), mapping={
        "status": "new", "value": value, "currency": "EUR", "tenant": "", "expires_ms": 0,
        "batch": "Vtest"})


@dataclass
class Call:
    account: str
    session_id: str
    answer_ms: int
    seq: int = 0
    paid_s: int = 0
    ended: bool = False


async def pay_up_to(pp: Prepaid, call: Call, target_s: int) -> DebitReply:
    """One debit as the ticker makes it (debit_args into SessionService.debit_many)."""
    rec = await pp.sessions.get(call.session_id)
    assert rec.tariff is not None
    args = debit_args(rec.tariff, rec.bundle, False, call.seq, call.paid_s, call.answer_ms,
                      call.answer_ms + target_s * 1000, target_s)
    (reply,) = await pp.sessions.debit_many([(rec.account, rec.session_id, args)])
    assert isinstance(reply, DebitReply) and reply.status == "ok", reply
    call.seq, call.paid_s = reply.seq, reply.paid_s
    return reply


async def cards_on_every_master(pp: Prepaid, cluster: RedisClusterProcesses, value: int,
                                per_master: int) -> list[str]:
    """Cards (issued one batch each, as a shop would) until every master holds
    `per_master` of them; card numbers are random."""
    by_port: dict[int, list[str]] = {n.port: [] for n in cluster.masters()}
    while any(len(v) < per_master for v in by_port.values()):
        number, _ = await pp.card(value)
        held = by_port[cluster.node_for_key(keys.card(number)).port]
        if len(held) < per_master:
            held.append(number)
    return [n for v in by_port.values() for n in v]


async def step(pp: Prepaid, sched: DebitScheduler, seconds: int) -> None:
    for _ in range(seconds):
        pp.clock.advance(1)
        await sched.run_due()
        await sched.idle()


async def test_every_prepaid_script_runs_on_the_cluster(
    pp: Prepaid, cluster_client: RedisCluster, cluster: RedisClusterProcesses,
) -> None:
    ledger = ScriptLedger()
    ledger.watch(cluster_client)
    card, pin = await pp.card(500)  # a batch: card_create.lua, pipelined
    assert (await pp.cards.topup(card, 100, reference="t-1")).applied
    assert not (await pp.cards.topup(card, 100, reference="t-1")).applied
    assert (await pp.pins.verify_pin(card, "000000", "+3361")).reason == "bad_pin"
    assert (await pp.pins.verify_pin(card, pin, "+3361")).reason == "ok"
    vouchers = await pp.vouchers.create_batch(2, 250, "EUR", tenant="shop1")
    assert (await pp.vouchers.redeem(vouchers.codes[0], card)).status is RedeemStatus.OK
    assert (await pp.cards.get(card)).balance == 850

    sched = pp.scheduler()
    sid = await pp.call(card, "4420123", call_id="tour-1")
    await sched.answered(sid)
    await step(pp, sched, 30)
    cdr = await sched.hung_up(sid, pp.clock.now())
    assert cdr is not None and cdr.charge == 30
    assert (await pp.cards.get(card)).balance == 850 - 30
    assert [c.charge for c in await pp.all_cdrs()] == [30]

    assert PREPAID_SCRIPTS <= ledger.exercised, PREPAID_SCRIPTS - ledger.exercised
    assert ledger.cross_slot() == {}


async def test_the_ticker_conserves_money_of_cards_on_every_master(
    pp: Prepaid, cluster: RedisClusterProcesses,
) -> None:
    """One ticker batches the debits of calls on cards of all three masters in one
    pipeline; three calls share each card's 100 s of credit."""
    cards = await cards_on_every_master(pp, cluster, 100, per_master=2)
    sched = pp.scheduler()
    sids = {f"c{i}-{k}": await pp.call(card, "4420123", call_id=f"c{i}-{k}")
            for i, card in enumerate(cards) for k in range(3)}
    for sid in sids.values():
        await sched.answered(sid)
    lowest = 0
    for _ in range(40):
        await step(pp, sched, 1)
        for card in cards:
            c = await pp.cards.get(card)
            lowest = min(lowest, c.balance)
            assert c.balance + c.held == 100
    assert sorted(call for call, _ in pp.control.cut) == sorted(sids)
    for call_id, at in pp.control.cut:
        await sched.hung_up(sids[call_id], at)
    charged: dict[str, int] = {}
    for cdr in await pp.all_cdrs():
        charged[cdr.account] = charged.get(cdr.account, 0) + cdr.charge
    for card in cards:
        c = await pp.cards.get(card)
        assert (c.balance + charged[card], c.held) == (100, 0)
    assert lowest >= 0


async def test_concurrent_debits_of_calls_sharing_accounts_conserve_money(
    pp: Prepaid, cluster: RedisClusterProcesses,
) -> None:
    accounts = await open_accounts(pp, 4, 100)
    assert len({cluster.node_for_key(keys.card(a)).port for a in accounts}) > 1
    auths = await asyncio.gather(*(
        pp.sessions.authorize(AuthorizeRequest(a, "4420123", f"c{i}-{k}", "100"))
        for i, a in enumerate(accounts) for k in range(3)
    ))
    assert all(a.allowed for a in auths)
    calls = [Call(accounts[i // 3], a.session_id, int(T0 * 1000))
             for i, a in enumerate(auths)]
    lowest = 0
    for t in range(1, 60):  # every second each call pays its next second, all at once
        live = [c for c in calls if not c.ended]
        if not live:
            break
        await asyncio.gather(*(pay_up_to(pp, c, t) for c in live))
        for c in live:
            c.ended = c.paid_s < t  # the account could not pay: cut at what was paid
        for a in accounts:
            card = await pp.cards.get(a)
            lowest = min(lowest, card.balance)
            assert card.balance + card.held == 100
        pp.clock.advance(1)
    assert all(c.ended for c in calls)
    await asyncio.gather(*(pp.sessions.hangup(c.session_id, T0 + c.paid_s) for c in calls))
    charged: dict[str, int] = {}
    for cdr in await pp.all_cdrs():
        charged[cdr.account] = charged.get(cdr.account, 0) + cdr.charge
    for a in accounts:
        card = await pp.cards.get(a)
        assert (card.balance + charged[a], card.held, card.balance) == (100, 0, 0)
    assert lowest >= 0

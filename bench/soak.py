#!/usr/bin/env python3
"""Chaos soak: two gateways on a Redis Cluster, simulator traffic, faults at random.

What runs, for `--seconds` (default 600):
- a Redis Cluster of 3 masters with one replica each (`cluster-require-full-coverage no`);
- two `callgate serve` processes (gateways a and b) on that cluster, one simulated
  Asterisk (AMI + FastAGI over real sockets) in this process; the dialplan asks a or b
  for each call (the one of the two that is up, at random, as an AGI host list would);
- traffic: outbound calls arriving at `--rate` a second (Poisson), 3 tenants with an
  outbound limit each and a shared trunk with a channel limit, a few emergency calls;
  each allowed call stays up `--hold-min`..`--hold-max` seconds, then hangs up;
  `--card-share` of the calls are prepaid card calls (`card=`) on `--cards` cards created
  at the start with small balances (one cent a second), so concurrent calls share a card
  and some are cut off by the gateway; a card found nearly empty is topped up now and
  then (idempotent topups, counted from the card's credit records);
- chaos, one fault every `--chaos-every` seconds, each kind once per round in random
  order: kill -9 a gateway (the event owner half of the time) and start it
  again a few seconds later; fail over a Redis master (kill it, its replica takes over,
  the old master comes back as a replica); drop every AMI connection.

At the end: traffic stops, every gateway is brought back, and then
- counter drift: with the remaining calls still up, the sum over counters of
  |counter - live calls whose lease holds it|, plus live calls whose lease is gone and
  leases no live call holds, once the system has had up to `--settle` seconds to heal
  (must be 0; the time it took is printed);
- slot leaks: every call is hung up; counters and leases left over after `--settle`
  seconds (must be 0);
- money conservation error: once every call has ended and been settled (up to
  `--settle` s), the sum over cards of |start + topups - balance - CDR charges| plus the
  money still held (must be 0 minor units);
- double debits: the gateways log each debit Redis applied (`prepaid_debited`, debug);
  a (session, seq) applied more than once, across all gateway runs, is one (must be 0).

Prints a human summary, then (last line) the same figures as one JSON object.
Run: `.venv/bin/python bench/soak.py [--seconds 600] [--rate 4] [--chaos-every 20]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import json
import logging
import random
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.redis_connect import RedisClient, connect_redis
from limits import BackendUnavailable, EmergencyNumbers, LimitsService
from prepaid import keys as prepaid_keys
from prepaid.batches import BatchService, BatchSpec
from prepaid.cards import CardService
from prepaid.cdr import Cdr, CdrStore
from prepaid.clock import SystemClock
from prepaid.pins import PinHasher
from prepaid.rateplan_csv import parse_text
from prepaid.rateplan_store import RatePlanStore
from prepaid.rating import PlanSettings
from prepaid.replies import text
from sim.dialplan import ContextConfig
from sim.gateway_call import GatewayCall
from sim.simulator import AsteriskSim
from sim.world import WorldConfig
from tests.e2e_multi.debit_audit import DebitAudit
from tests.support.daemon import DaemonProcess, daemon_config, run_daemon
from tests.support.redis_cluster import RedisClusterProcesses, redis_cluster

SITE = "soak"
ASTERISK = "sim"
TRUNK = "e1-1"
TENANTS = ("t1", "t2", "t3")
TENANT_LIMIT = 8
TRUNK_LIMIT = 20
STAY_UP = "150"  # the simulated far end answers and stays up
EMERGENCY = "112"
PLAN_CSV = f"prefix,destination,rate,increments\n{STAY_UP},Soak,0.60,1/1\n"  # 1 cent a second
TOPUP = 100  # cents, when a card is found below TOPUP_BELOW (looked at every 10 s)
TOPUP_BELOW = 10


@dataclass
class Gateway:
    name: str
    tmp: Path
    config_text: str
    http_port: int
    agi_port: int
    exits: ExitStack
    proc: DaemonProcess | None = None
    up: bool = False
    starts: int = 0

    def start(self) -> None:
        """Blocking: start the process and wait until /readyz says ready."""
        self.starts += 1
        self.proc = self.exits.enter_context(run_daemon(
            self.tmp, self.config_text, self.http_port, self.agi_port,
            name=f"{self.name}-{self.starts}"))
        self.proc.wait_ready(60.0)
        self.up = True

    def kill(self) -> None:
        self.up = False
        if self.proc is not None and self.proc.proc.poll() is None:
            self.proc.signal(signal.SIGKILL)
            self.proc.wait_exit(10.0)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.proc.poll() is None

    def owner_detail(self) -> str:
        if not self.alive():
            return ""
        assert self.proc is not None
        try:
            _, raw = self.proc.http_get("/readyz")
            detail = json.loads(raw)["checks"][f"event_owner:{ASTERISK}"]["detail"]
        except (OSError, KeyError, ValueError):
            return ""
        return str(detail)

    def log_events(self, event: str) -> int:
        total = 0
        for path in self.tmp.glob(f"{self.name}-*.log"):
            with contextlib.suppress(OSError):
                total += sum(1 for line in path.read_text(errors="replace").splitlines()
                             if f'"{event}"' in line and '"event"' in line)
        return total


@dataclass
class Tally:
    attempted: int = 0
    allowed: int = 0
    denied: Counter[str] = field(default_factory=Counter)
    agi_failed: int = 0
    chaos: Counter[str] = field(default_factory=Counter)
    live: list[tuple[GatewayCall, float]] = field(default_factory=list)  # call, hang-up at
    card_attempted: int = 0
    card_allowed: int = 0
    topups: int = 0


class Soak:
    def __init__(self, args: argparse.Namespace, cluster: RedisClusterProcesses,
                 sim: AsteriskSim, gateways: list[Gateway], limits: LimitsService,
                 redis: RedisClient, cards: dict[str, tuple[str, int]]) -> None:
        self.args = args
        self.cluster = cluster
        self.sim = sim
        self.gateways = gateways
        self.limits = limits
        self.redis = redis
        self.cards = cards  # card -> (tenant, starting balance)
        self.rng = random.Random(args.seed)
        self.tally = Tally()
        self.stop = asyncio.Event()
        self.pending: set[asyncio.Task[None]] = set()

    # -- traffic -----------------------------------------------------------------------

    async def traffic(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(self.rng.expovariate(self.args.rate))
            up = [g for g in self.gateways if g.up]
            if not up:
                continue
            gw = self.rng.choice(up)
            number = EMERGENCY if self.rng.random() < 0.03 else STAY_UP
            tenant = self.rng.choice(TENANTS)
            mine = [c for c, (t, _) in self.cards.items() if t == tenant]
            card = ""
            if number != EMERGENCY and mine and self.rng.random() < self.args.card_share:
                card = self.rng.choice(mine)
                call = self.sim.place_call(number, context=f"card-{gw.name}",
                                           variables={"TENANT": tenant, "CARD": card})
                self.tally.card_attempted += 1
            else:
                call = self.sim.place_call(number, context=f"out-{gw.name}",
                                           variables={"TENANT": tenant})
            self.tally.attempted += 1
            task = asyncio.create_task(self._follow(call, bool(card)))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def _follow(self, call: GatewayCall, card: bool = False) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(20.0):
                while not call.var(call.g2, "CALLGATE_RESULT") and not call.ended.is_set():  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
        result = call.var(call.g2, "CALLGATE_RESULT")
        if result == "ALLOW":
            self.tally.allowed += 1
            self.tally.card_allowed += card
            hold = self.rng.uniform(self.args.hold_min, self.args.hold_max)
            self.tally.live.append((call, time.monotonic() + hold))
        elif result == "DENY":
            self.tally.denied[call.var(call.g2, "CALLGATE_REASON") or "?"] += 1
        else:  # the gateway died or was unreachable mid-request (AGISTATUS=FAILURE)
            self.tally.agi_failed += 1
            if not call.ended.is_set():
                self.sim.dialplan.request_hangup(call.g2, 16)

    async def hang_ups(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(0.2)
            now = time.monotonic()
            keep = []
            for call, at in self.tally.live:
                if call.ended.is_set():
                    continue
                if at <= now:
                    self.sim.dialplan.request_hangup(call.g2, 16)
                else:
                    keep.append((call, at))
            self.tally.live = keep

    async def top_ups(self) -> None:
        """Top up cards found nearly empty (a reference per topup: a retry after a Redis
        error cannot count twice, and the card's credit records say what was applied)."""
        cards = CardService(self.redis, SystemClock())
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 10.0)
            for number in self.cards:
                try:
                    if (await cards.get(number)).balance < TOPUP_BELOW:
                        self.tally.topups += 1
                        await cards.topup(number, TOPUP, reference=f"soak-{self.tally.topups}")
                except Exception as exc:  # chaos: counted from the credit records anyway
                    print(f"topup of {number} failed: {exc!r}", flush=True)

    # -- chaos -------------------------------------------------------------------------

    async def chaos(self) -> None:
        actions: list[Any] = []
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.args.chaos_every)
            if self.stop.is_set():
                return
            if not actions:  # every kind of fault once per round, in random order
                actions = [self.kill_gateway, self.fail_over_master, self.drop_ami]
                self.rng.shuffle(actions)
            action = actions.pop()
            try:
                await action()
            except Exception as exc:  # report, keep soaking
                print(f"chaos {action.__name__} failed: {exc!r}", flush=True)
                self.tally.chaos[f"{action.__name__}_failed"] += 1

    async def kill_gateway(self) -> None:
        up = [g for g in self.gateways if g.up]
        if len(up) < 2:
            return
        owners = await asyncio.to_thread(self.owners)
        gw = self.rng.choice(up)
        if owners and self.rng.random() < 0.5:  # the event owner: its card calls move over
            gw = next((g for g in up if g.name == owners[0]), gw)
            self.tally.chaos["gateway_kill_owner"] += 1
        await asyncio.to_thread(gw.kill)
        self.tally.chaos["gateway_kill"] += 1
        await asyncio.sleep(self.rng.uniform(2.0, 6.0))
        await asyncio.to_thread(gw.start)

    async def fail_over_master(self) -> None:
        masters = await asyncio.to_thread(self.cluster.masters)
        master = self.rng.choice(masters)
        await asyncio.to_thread(self.cluster.fail_over, master, 30.0)
        self.tally.chaos["redis_failover"] += 1
        await asyncio.to_thread(self.cluster.restart, master)  # back as a replica

    async def drop_ami(self) -> None:
        for session in list(self.sim.ami_sessions):
            await session.close()
        self.tally.chaos["ami_drop"] += 1

    # -- the end -----------------------------------------------------------------------

    async def bring_back(self) -> None:
        for gw in self.gateways:
            if not gw.alive():
                await asyncio.to_thread(gw.start)
            else:
                assert gw.proc is not None
                await asyncio.to_thread(gw.proc.wait_ready, 60.0)
        await asyncio.to_thread(self.cluster.wait_ok, 30.0)

    def live_calls(self) -> list[GatewayCall]:
        return [c for c, _ in self.tally.live if not c.ended.is_set()]

    async def drift(self) -> tuple[int, dict[str, tuple[int, int]]]:
        """Sum over counters of |counter - live calls whose lease holds it|, plus live
        calls whose lease is gone and leases no live call holds; with what differs."""
        try:
            seen = Counter(await self.limits.in_use())
            leases = {x.lease_id: x for x in await self.limits.leases()}
        except BackendUnavailable:
            return 10**9, {}
        live = {c.var(c.g2, "CALLGATE_LEASE") for c in self.live_calls()} - {""}
        want: Counter[str] = Counter()
        for lease_id in live & set(leases):
            want.update(leases[lease_id].scopes)
        diff = {k: (seen.get(k, 0), want.get(k, 0)) for k in set(seen) | set(want)
                if seen.get(k, 0) != want.get(k, 0)}
        missing, stale = len(live - set(leases)), len(set(leases) - live)
        if missing:
            diff["live calls without a lease"] = (missing, 0)
        if stale:
            diff["leases without a live call"] = (stale, 0)
        return sum(abs(a - b) for a, b in diff.values()), diff

    async def settle(self, timeout: float) -> tuple[int, dict[str, tuple[int, int]], float]:
        started = time.monotonic()
        drift, diff = await self.drift()
        while drift and time.monotonic() - started < timeout:
            await asyncio.sleep(0.5)
            drift, diff = await self.drift()
        return drift, diff, time.monotonic() - started

    async def leases_left(self) -> int:
        try:
            return len(await self.limits.leases())
        except BackendUnavailable:
            return -1

    async def money(self) -> tuple[int, dict[str, Any]]:
        """Sum over cards of |start + topups - balance - CDR charges| + money held."""
        cards = CardService(self.redis, SystemClock())
        store = CdrStore(self.redis)
        charges: Counter[str] = Counter()
        seen: set[str] = set()
        try:
            async for cdr in store.iter_range(0, 4e9):
                if cdr.session_id not in seen:
                    seen.add(cdr.session_id)
                    charges[cdr.account] += cdr.charge
            error, detail = 0, {}
            for number, (_, start) in self.cards.items():
                for sid, raw in (await store.pending(number)).items():  # not relayed yet
                    if sid not in seen:
                        seen.add(sid)
                        charges[number] += Cdr.from_json(raw).charge
                credits = await self.redis.hgetall(prepaid_keys.credits(number))
                topped = sum(int(text(v).split(":")[0]) for v in credits.values())
                card = await cards.get(number)
                off = abs(start + topped - card.balance - charges[number]) + abs(card.held)
                if off:
                    detail[number] = {"start": start, "topups": topped,
                                      "balance": card.balance, "held": card.held,
                                      "charges": charges[number]}
                error += off
        except Exception as exc:  # Redis still healing: not settled yet
            return 10**9, {"error": repr(exc)}
        return error, detail

    async def settle_money(self, timeout: float) -> tuple[int, dict[str, Any], float]:
        started = time.monotonic()
        error, detail = await self.money()
        while error and time.monotonic() - started < timeout:
            await asyncio.sleep(0.5)
            error, detail = await self.money()
        return error, detail, time.monotonic() - started

    def debit_audit(self) -> DebitAudit:
        return DebitAudit.from_logs(p for g in self.gateways for p in g.tmp.glob("*.log"))

    def owners(self) -> list[str]:
        return [g.name for g in self.gateways if g.owner_detail().startswith("this gateway")]


def build_gateways(tmp: Path, cluster: RedisClusterProcesses, sim: AsteriskSim,
                   exits: ExitStack) -> list[Gateway]:
    extra = (
        '[limits]\nlease_ttl = 15.0\n\n'
        f'[[asterisk]]\nname = "{ASTERISK}"\nhost = "127.0.0.1"\nport = {sim.ami_port}\n'
        'username = "gateway"\nsecret = "gateway"\nping_interval = 2.0\n'
        'action_timeout = 3.0\n'
    )
    gateways = []
    for name in ("a", "b"):
        # debug: each applied debit is logged (`prepaid_debited`), for the double-debit count
        config, http_port, agi_port = daemon_config(tmp / name, redis_url=cluster.url,
                                                    site=SITE, extra=extra)
        gateways.append(Gateway(name, tmp / name, config, http_port, agi_port, exits))
        agi = (f"agi://127.0.0.1:{agi_port}/authorize,tenant=${{TENANT}},direction=out,"
               f"trunk={TRUNK}")
        sim.add_context(ContextConfig(f"out-{name}", agi=agi))
        # the gateway cuts a card call off when its money runs out; L() is a backstop
        sim.add_context(ContextConfig(f"card-{name}", agi=f"{agi},card=${{CARD}}",
                                      maxsec_margin=30))
    return gateways


async def make_cards(redis: RedisClient, count: int, rng: random.Random
                     ) -> dict[str, tuple[str, int]]:
    """The rate plan (one cent a second) and `count` cards spread over the tenants, with
    small balances: concurrent calls share them and some run out."""
    clock = SystemClock()
    settings = PlanSettings("EUR", warn_seconds=5)
    await RatePlanStore(redis, clock).save("std", settings,
                                           parse_text(PLAN_CSV, settings).entries)
    batches = BatchService(redis, PinHasher(b"soak-pin-secret-0123456789"), clock)
    cards: dict[str, tuple[str, int]] = {}
    for i in range(count):
        tenant, value = TENANTS[i % len(TENANTS)], rng.randint(20, 120)
        issued = await batches.create(BatchSpec(count=1, value=value, currency="EUR",
                                                plan="std", tenant=tenant, sold=True))
        cards[issued.cards[0].number] = (tenant, value)
    return cards


async def run(args: argparse.Namespace, tmp: Path,
              cluster: RedisClusterProcesses) -> dict[str, Any]:
    sim = AsteriskSim(speed=1.0, world_config=WorldConfig(auth_fail_delay=0.1, seed=args.seed))
    await sim.start()
    client = connect_redis(cluster.url, cluster=False, socket_timeout=2.0)
    limits = LimitsService(client, SITE, emergency=EmergencyNumbers([EMERGENCY]))
    with ExitStack() as exits:
        gateways = build_gateways(tmp, cluster, sim, exits)
        try:
            for tenant in TENANTS:
                await limits.settings.set_tenant_limit(tenant, "outbound", TENANT_LIMIT)
            await limits.settings.set_trunk_limit(TRUNK, TRUNK_LIMIT)
            cards = await make_cards(client, args.cards, random.Random(args.seed))
            for gw in gateways:
                await asyncio.to_thread(gw.start)
            soak = Soak(args, cluster, sim, gateways, limits, client, cards)
            print(f"soaking {args.seconds:.0f} s: {args.rate}/s calls, a fault every "
                  f"{args.chaos_every:.0f} s", flush=True)
            started = time.monotonic()
            tasks = [asyncio.create_task(soak.traffic()), asyncio.create_task(soak.hang_ups()),
                     asyncio.create_task(soak.chaos()), asyncio.create_task(soak.top_ups())]
            await asyncio.sleep(args.seconds)
            soak.stop.set()
            await asyncio.gather(*tasks)
            if soak.pending:
                await asyncio.wait(soak.pending, timeout=30)
            ran = time.monotonic() - started
            await soak.bring_back()
            still_up = len(soak.live_calls())
            drift, drift_diff, drift_s = await soak.settle(args.settle)
            owners = await asyncio.to_thread(soak.owners)
            for call in soak.live_calls():
                sim.dialplan.request_hangup(call.g2, 16)
            await asyncio.sleep(0.5)
            leak, leak_diff, leak_s = await soak.settle(args.settle)
            leases = await soak.leases_left()
            money, money_detail, money_s = await soak.settle_money(args.settle)
            audit = soak.debit_audit()
            t = soak.tally
            return {
                "seconds": round(ran, 1),
                "calls_attempted": t.attempted,
                "calls_allowed": t.allowed,
                "calls_denied": sum(t.denied.values()),
                "denied_by_reason": dict(sorted(t.denied.items())),
                "agi_failed": t.agi_failed,
                "chaos": dict(sorted(t.chaos.items())),
                "calls_up_at_end": still_up,
                "counter_drift": drift,
                "counter_drift_detail": {k: list(v) for k, v in sorted(drift_diff.items())},
                "drift_settled_s": round(drift_s, 1),
                "slot_leaks": leak,
                "slot_leak_detail": {k: list(v) for k, v in sorted(leak_diff.items())},
                "leases_left": leases,
                "leaks_settled_s": round(leak_s, 1),
                "event_owners_at_end": owners,
                "event_owner_takeovers": sum(g.log_events("event_owner_acquired")
                                             for g in gateways),
                "gateway_starts": {g.name: g.starts for g in gateways},
                "card_calls_attempted": t.card_attempted,
                "card_calls_allowed": t.card_allowed,
                "cards": len(cards),
                "card_topups": t.topups,
                "prepaid_cut_offs": sum(g.log_events("prepaid_cut_off") for g in gateways),
                "prepaid_adoptions": sum(g.log_events("prepaid_adopted") for g in gateways),
                "debits_applied": sum(audit.applied.values()),
                "money_conservation_error": money,
                "money_detail": money_detail,
                "money_settled_s": round(money_s, 1),
                "double_debits": audit.double_debits,
            }
        finally:
            await sim.stop()
            await client.aclose()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--rate", type=float, default=4.0, help="new calls per second")
    p.add_argument("--hold-min", type=float, default=2.0)
    p.add_argument("--hold-max", type=float, default=10.0)
    p.add_argument("--chaos-every", type=float, default=20.0)
    p.add_argument("--settle", type=float, default=40.0,
                   help="seconds allowed to heal before drift and leaks are counted")
    p.add_argument("--seed", type=int, default=9)
    p.add_argument("--card-share", type=float, default=0.3,
                   help="share of the calls made with a prepaid card")
    p.add_argument("--cards", type=int, default=9)
    args = p.parse_args()
    with quiet(), tempfile.TemporaryDirectory(prefix="callgate-soak-") as tmp_name:
        tmp = Path(tmp_name)
        with redis_cluster(tmp / "cluster", replicas=1, full_coverage=False) as cluster:
            figures = asyncio.run(run(args, tmp, cluster))
    denied = ", ".join(f"{k} {v}" for k, v in figures["denied_by_reason"].items()) or "none"
    print(f"ran {figures['seconds']} s with faults {figures['chaos']}")
    print(f"calls attempted {figures['calls_attempted']}, allowed {figures['calls_allowed']},"
          f" denied {figures['calls_denied']} ({denied}), AGI failed "
          f"{figures['agi_failed']} (gateway down mid-request)")
    print(f"counter drift {figures['counter_drift']} with {figures['calls_up_at_end']} calls "
          f"up (healed in {figures['drift_settled_s']} s)")
    print(f"slot leaks {figures['slot_leaks']}, leases left {figures['leases_left']} "
          f"(after {figures['leaks_settled_s']} s)")
    print(f"event owners at end {figures['event_owners_at_end']}, ownership acquisitions "
          f"{figures['event_owner_takeovers']}")
    print(f"card calls attempted {figures['card_calls_attempted']}, allowed "
          f"{figures['card_calls_allowed']} on {figures['cards']} cards, cut off "
          f"{figures['prepaid_cut_offs']}, topups {figures['card_topups']}, debits applied "
          f"{figures['debits_applied']}, adoptions of an Asterisk's calls "
          f"{figures['prepaid_adoptions']}")
    print(f"money conservation error: {figures['money_conservation_error']} minor units "
          f"(settled in {figures['money_settled_s']} s); double debits: "
          f"{figures['double_debits']}")
    print(json.dumps(figures, sort_keys=True))
    ok = figures["counter_drift"] == 0 and figures["slot_leaks"] == 0 \
        and figures["leases_left"] == 0 and len(figures["event_owners_at_end"]) == 1 \
        and figures["money_conservation_error"] == 0 and figures["double_debits"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""A call-shop simulation for fault tests: many calls on one card, each an asyncio task,
a gateway (SessionService + DebitScheduler over its own Redis client) that can be killed
abruptly and started again, on a sped-up real clock so tasks interleave as in production.

The calls play Asterisk's part: they ask the gateway to authorize, ring, answer, talk for a
random time or until the gateway cuts them off (then hang up a little late, as a real AMI
Hangup does), and report their hangup. While the gateway is down its AMI events are queued
and handed to the next gateway after it resumed, with the channel's own answer and end
times, as the real gateway learns them from Asterisk.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from prepaid import keys
from prepaid.cdr import Cdr, CdrStore
from prepaid.clock import ScaledClock
from prepaid.control import WarnTarget
from prepaid.debit_transport import ThreadedDebits
from prepaid.rateplan_store import RatePlanCache, RatePlanStore
from prepaid.replies import as_int
from prepaid.scheduler import DebitScheduler
from prepaid.sessions import AuthorizeRequest, SessionService


def client(url: str) -> aioredis.Redis:
    # no hidden retries: the code under test must cope with errors itself
    return aioredis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_timeout=2)


@dataclass
class Control:
    clock: ScaledClock
    cut_events: dict[str, asyncio.Event]
    cut_calls: list[str] = field(default_factory=list)

    async def cut_off(self, call_id: str) -> None:
        self.cut_calls.append(call_id)
        ev = self.cut_events.get(call_id)
        if ev is not None:
            ev.set()

    async def play_warning(self, call_id: str, to: WarnTarget) -> None:
        return None


@dataclass
class Gateway:
    redis: aioredis.Redis
    sessions: SessionService
    scheduler: DebitScheduler
    runner: asyncio.Task[None]
    inflight: set[asyncio.Task[object]] = field(default_factory=set)


Event = Callable[[Gateway], Awaitable[object]]


@dataclass
class Shop:
    url: str
    clock: ScaledClock
    card: str
    gateway_name: str = "gw1"
    transport: str = "async"  # how the ticker reaches Redis: "async" or "thread"
    cut_events: dict[str, asyncio.Event] = field(default_factory=dict)
    gw: Gateway | None = None
    queued: list[Event] = field(default_factory=list)
    session_ids: list[str] = field(default_factory=list)
    denied: int = 0
    min_balance: int = 0

    async def start_gateway(self) -> None:
        r = client(self.url)
        clock = self.clock
        svc = SessionService(r, RatePlanCache(RatePlanStore(r, clock), clock), clock,
                             gateway=self.gateway_name)
        debits = (ThreadedDebits(redis.Redis.from_url(self.url, socket_timeout=2))
                  if self.transport == "thread" else None)
        sched = DebitScheduler(svc, Control(clock, self.cut_events), clock,
                               renew_lead_s=2.0, coalesce_s=0.2, retry_s=0.5,
                               transport=debits)
        await sched.resume()
        gw = Gateway(r, svc, sched, sched.start())
        while self.queued:  # what Asterisk says happened while we were away
            await self.queued.pop(0)(gw)
        self.gw = gw

    def kill_gateway(self) -> None:
        """kill -9: no settlement, no flush; in-flight debits and callbacks just stop."""
        gw = self.gw
        assert gw is not None
        self.gw = None
        gw.scheduler._stopping = True  # a cancel can be swallowed by a Redis call (3.11)
        gw.runner.cancel()
        for task in [*gw.scheduler._tasks, *gw.inflight]:
            task.cancel()

    async def stop_gateway(self) -> None:
        assert self.gw is not None
        for _ in range(500):  # hangups deferred while Redis was away: the ticker retries
            if not self.gw.scheduler.unsettled:
                break
            await asyncio.sleep(0.01)
        await self.gw.scheduler.stop()
        await self.gw.redis.aclose()

    async def send(self, ev: Event) -> None:
        """An AMI event: to the gateway if it is up, else queued for the next one."""
        gw = self.gw
        if gw is None:
            self.queued.append(ev)
            return
        task = asyncio.ensure_future(ev(gw))
        gw.inflight.add(task)
        await asyncio.wait({task})
        gw.inflight.discard(task)
        if task.cancelled():  # the gateway died handling it: Asterisk tells the next one
            self.queued.append(ev)
        else:
            task.result()

    async def call(self, i: int, rng: random.Random, dest: str) -> None:
        call_id = f"sim-{i}"
        self.cut_events[call_id] = cut = asyncio.Event()
        await self.clock.sleep(rng.uniform(0, 8))
        while self.gw is None:
            await asyncio.sleep(0.005)
        try:
            auth = await self.gw.sessions.authorize(AuthorizeRequest(self.card, dest, call_id))
        except RedisError:
            auth = None
        if auth is None or not auth.allowed:
            self.denied += 1
            return
        sid = auth.session_id
        self.session_ids.append(sid)
        await self.clock.sleep(rng.uniform(0, 3))  # ringing
        if rng.random() < 0.1:  # never answered
            end = self.clock.now()
            await self.send(lambda g: g.scheduler.hung_up(sid, end, 19, "caller"))
            return
        answered_at = self.clock.now()
        failed = False

        async def answer(g: Gateway) -> None:
            nonlocal failed
            try:
                await g.scheduler.answered(sid, answered_at)
            except RedisError:
                failed = True  # cannot meter it: the gateway hangs it up (fail closed)

        await self.send(answer)
        talk = rng.uniform(3, 60)
        try:
            if not failed:
                await asyncio.wait_for(cut.wait(), talk / self.clock.scale)
            await self.clock.sleep(0.3)  # the AMI Hangup arrives a little after the cut
            who = "credit"
        except TimeoutError:
            who = "caller"
        end = self.clock.now()

        async def hangup(g: Gateway) -> None:
            await g.scheduler.hung_up(sid, end, 16, "caller" if who == "caller" else "system",
                                      answered_at=answered_at)

        await self.send(hangup)

    async def watch_balance(self, stop: asyncio.Event) -> None:
        r = client(self.url)
        try:
            while not stop.is_set():
                try:
                    b = as_int(await r.hget(keys.card(self.card), "balance"))
                    self.min_balance = min(self.min_balance, b)
                except RedisError:
                    pass
                await asyncio.sleep(0.003)
        finally:
            await r.aclose()


async def cdrs_of(url: str) -> list[Cdr]:
    r = client(url)
    try:
        return [c async for c in CdrStore(r).iter_range(0, 4e9)]
    finally:
        await r.aclose()

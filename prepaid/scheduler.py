"""The debit ticker: advances every live prepaid call of this gateway.

Each live call holds only what it has paid ahead: a step (increment) is paid
`renew_lead_s` before the previous one runs out (plus `reserve_ahead_s` if configured), so
however many calls share a card, ticks never take it below zero (a late hangup may take it
one increment below, never more). One heap of due times; calls due within `coalesce_s` are
debited together, one EVALSHA of debit.lua each, in pipelines of `batch_size`. Answers
(first step) and hangups (settle.lua) are batched the same way, so 10,000 calls cost a
handful of round trips per second. Under load pass `ThreadedDebits` as `transport`: the
batches then leave from a thread of their own and the gateway's crowded event loop cannot
make debits and cut-offs late (prepaid.debit_transport).

When a call's paid time cannot be extended and runs out, the ticker asks `CallControl` to
cut it off (never early: cut-offs are checked at the exact paid end) and its CDR says
`credit`. When the time left (paid time + what the balance buys at the current rate + free
bundle seconds) reaches the warning threshold it asks for the warning prompt, once.

Nothing the ticker knows lives only in memory: sessions are in Redis, and a new ticker
after a crash (`resume()`) takes back the gateway's calls, debits the time they ran
meanwhile and cuts off those whose money ran out.

Several gateways: each call is debited by one of them, the event owner of the Asterisk
the call is on (its `origin`). The gateway passes a `fence`: origin -> the epoch of its
ownership, None when another gateway owns that Asterisk. Calls of an Asterisk owned
elsewhere are not ticked, warned or cut off here (an answer seen here is only noted in
the session, answer_seen.lua, for the owner); `resume()` run again on gaining ownership
adopts that Asterisk's live calls from Redis, `disown()` on losing it stops ticking them
without ending them. Every debit carries the epoch, and debit.lua refuses one older than
the newest it has seen for that call ('fenced'): a gateway that lost ownership without
knowing it yet cannot debit after the new owner has. Without a fence (one gateway, tests)
everything is ticked with epoch 0, unfenced. Redis errors never stop the ticker: a
failed batch is retried; a call whose paid time ends while Redis cannot be reached is cut
off (`cut_when_unreachable`, fail closed) rather than run on unpaid, and hangups are kept
and settled (with their real end times) once Redis is back.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from redis.exceptions import RedisError

from prepaid import keys
from prepaid.cdr import Cdr
from prepaid.clock import Clock, to_ms
from prepaid.control import (
    EV_CUT_OFF,
    EV_LOW_BALANCE,
    EV_WARNING,
    CallControl,
    EndedBy,
    EventSink,
    NoEvents,
)
from prepaid.debit import DebitReply, SessionRecord, debit_args
from prepaid.debit_transport import AsyncDebits, DebitTransport
from prepaid.errors import SessionNotFound
from prepaid.money import ceil_div
from prepaid.replies import text
from prepaid.sessions import SessionService

log = structlog.get_logger(__name__)

# origin (the Asterisk a call is on, '' unknown) -> epoch to debit with, None: not ours
Fence = Callable[[str], int | None]


@dataclass(slots=True)
class _Live:
    rec: SessionRecord
    answer_ms: int
    seq: int
    paid_s: int
    on_bundle: bool
    balance: int = 0
    bundle_left: int = 0
    short: bool = False  # the last debit could not reach its target: check at the paid end
    warned: bool = False
    low_sent: bool = False
    free_s: int = 0
    fresh: bool = False  # balance known from a debit reply (warnings need it)
    version: int = 0
    origin: str = ""  # the Asterisk the call is on ('' unknown)
    epoch: int = 0  # event-owner epoch its debits carry (0: unfenced)

    @property
    def paid_end_ms(self) -> int:
        return self.answer_ms + self.paid_s * 1000


@dataclass(frozen=True)
class _Hangup:
    session_id: str
    ended_at: float
    cause: int
    ended_by: EndedBy
    answered_at: float | None
    # still ticked here when it hung up: this gateway had not cut it off, whatever a
    # debit that ran after the call's end (a frozen gateway waking up) marked in Redis
    uncut: bool = False


@dataclass
class TickStats:
    debits: int = 0
    batches: int = 0
    errors: int = 0
    cut_offs: int = 0
    warnings: int = 0
    # (sessions debited, wall seconds) of each run_due that debited something
    runs: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=100_000))
    # how late, ms, each cut-off was decided after the end of the call's paid time
    cut_late_ms: deque[int] = field(default_factory=lambda: deque(maxlen=100_000))


@dataclass(frozen=True)
class ResumeReport:
    live: int  # calls ticked again
    cut: int  # calls found cut off; their cut-off re-issued
    relayed: int  # ended calls whose CDR relay was finished
    waiting: int  # authorized, not answered yet
    closed: int  # authorized long ago and never answered: closed with a zero CDR
    dropped: int  # pointers to sessions that no longer exist
    others: int = 0  # calls on an Asterisk another gateway owns: left to it


class DebitScheduler:
    def __init__(
        self,
        service: SessionService,
        control: CallControl,
        clock: Clock,
        *,
        events: EventSink | None = None,
        renew_lead_s: float = 2.0,
        reserve_ahead_s: float = 0.0,
        coalesce_s: float = 0.25,
        batch_size: int = 1000,
        retry_s: float = 1.0,
        max_idle_s: float = 1.0,
        cut_when_unreachable: bool = True,
        stale_authorized_s: float = 4 * 3600,
        callback_timeout_s: float = 10.0,
        transport: DebitTransport | None = None,
        fence: Fence | None = None,
    ) -> None:
        """`transport`: how debit batches reach Redis; default the service's asyncio client.
        A busy gateway passes `ThreadedDebits` (see prepaid.debit_transport). `fence`: see
        the module's doc (`use_fence`)."""
        self._svc = service
        self._transport = transport or AsyncDebits(service)
        self._control = control
        self._clock = clock
        self._events = events or NoEvents()
        self._lead_ms = int(renew_lead_s * 1000)
        self._ahead_ms = int(reserve_ahead_s * 1000)
        self._coalesce_ms = int(coalesce_s * 1000)
        self._batch = batch_size
        self._retry_ms = int(retry_s * 1000)
        self._max_idle_s = max_idle_s
        self._cut_unreachable = cut_when_unreachable
        self._stale_auth_ms = int(stale_authorized_s * 1000)
        self._cb_timeout = callback_timeout_s
        self._live: dict[str, _Live] = {}
        self._heap: list[tuple[int, int, str, int]] = []  # due ms, tie, session id, version
        self._tie = itertools.count()
        self._cut_local: set[str] = set()
        # cut-offs under way, and those that found the call already gone (a gateway that
        # froze past the end of the credit): not `credit` in the CDR
        self._cutting: dict[str, asyncio.Task[None]] = {}
        self._cut_missed: set[str] = set()
        self._unsettled: dict[str, _Hangup] = {}
        self._cut_mirrors: dict[str, _Live] = {}
        # authorized, not seen answered, found by resume(): session id -> (call id, created
        # epoch s); the gateway settles those whose call ended while it was down
        self._waiting: dict[str, tuple[str, float]] = {}
        # hangups seen here (settled or being settled): never adopted again by resume()
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._settle_q: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        self._fence = fence
        self._resuming = asyncio.Lock()
        self.stats = TickStats()

    def use_fence(self, fence: Fence | None) -> None:
        """Debit only the calls whose Asterisk `fence(origin)` gives an epoch for."""
        self._fence = fence

    def _epoch_for(self, origin: str) -> int | None:
        return 0 if self._fence is None else self._fence(origin)

    def _still_ours(self, lv: _Live) -> bool:
        """False (and the call no longer ticked here) once another gateway owns it."""
        epoch = self._epoch_for(lv.origin)
        if epoch is None:
            self._live.pop(lv.rec.session_id, None)
            lv.version += 1
            log.info("prepaid_call_handed_over", call_id=lv.rec.call_id,
                     session=lv.rec.session_id, asterisk=lv.origin)
            return False
        lv.epoch = epoch
        return True

    def disown(self, origin: str) -> int:
        """Stop ticking the calls on `origin` (another gateway owns it now): they stay live
        in Redis for the new owner to adopt; returns how many."""
        gone = [sid for sid, lv in self._live.items() if lv.origin == origin]
        for sid in gone:
            self._live.pop(sid).version += 1
        for sid in [s for s, lv in self._cut_mirrors.items() if lv.origin == origin]:
            del self._cut_mirrors[sid]
        log.info("prepaid_disowned", asterisk=origin, calls=len(gone))
        return len(gone)

    # -- what the gateway calls -----------------------------------------------------------

    @property
    def live_count(self) -> int:
        return len(self._live)

    def waiting_calls(self) -> list[tuple[str, str, float]]:
        """(session id, Asterisk call id, authorized at, epoch s) of the calls resume() found
        not yet answered: after a restart the gateway checks them against the channels
        Asterisk still has, as it does `live_calls`; an answer or a hangup drops one."""
        return [(sid, call_id, at) for sid, (call_id, at) in self._waiting.items()]

    def live_calls(self) -> list[tuple[str, str, float]]:
        """(session id, Asterisk call id, end of its paid time in epoch s) of every call
        this ticker debits or has cut off and not yet seen hang up: the gateway checks
        them against the channels Asterisk still has after a restart."""
        both = [*self._live.items(), *self._cut_mirrors.items()]
        return [(sid, lv.rec.call_id, lv.paid_end_ms / 1000) for sid, lv in both]

    async def answered(
        self, session_id: str, answered_at: float | None = None, origin: str = ""
    ) -> None:
        """AMI: the callee answered (on Asterisk `origin`). The ticker pays the first step
        (with the connection fee) in its next run, batched with the other answers and
        renewals (within `coalesce_s`); a card that cannot pay it is cut off then. When
        another gateway owns `origin`, the answer is only noted in the session."""
        self._waiting.pop(session_id, None)
        rec = await self._svc.opened(session_id)
        now_ms = to_ms(self._clock.now())
        answer_ms = to_ms(answered_at) if answered_at is not None else now_ms
        origin = origin or rec.origin
        epoch = self._epoch_for(origin)
        if epoch is None:
            await self._svc.scripts.answer_seen(
                keys=[keys.session(rec.account, session_id)], args=[origin, answer_ms])
            log.debug("prepaid_answer_noted", call_id=rec.call_id, session=session_id,
                      asterisk=origin)
            return
        if rec.emergency:
            await self._svc.mark_answered(rec, answer_ms)
            return
        if rec.state == "ended" or session_id in self._live:
            return
        if rec.state == "live" or rec.answer_ms:  # answered via another gateway: adopt
            answer_ms = rec.answer_ms
        live = _Live(rec, answer_ms, rec.seq, rec.paid_s, rec.on_bundle, warned=rec.warned,
                     origin=origin, epoch=epoch)
        self._live[session_id] = live
        log.info("prepaid_answered", call_id=rec.call_id, card=rec.account,
                 tenant=rec.tenant, session=session_id)
        self._push(live, now_ms)
        self._wake.set()

    async def hung_up(
        self,
        session_id: str,
        ended_at: float | None = None,
        cause: int = 16,
        ended_by: EndedBy = "caller",
        answered_at: float | None = None,
    ) -> Cdr | None:
        """AMI Hangup (or `release`): stop ticking and settle; returns the CDR.

        None when Redis cannot be reached: the settlement is kept (with the real end time,
        so the charge is exact) and retried by the ticker until Redis answers."""
        self._waiting.pop(session_id, None)
        uncut = session_id in self._live or await self._cut_missed_it(session_id)
        live = self._live.pop(session_id, None) or self._cut_mirrors.pop(session_id, None)
        if live is not None:
            live.version += 1
        self._ended[session_id] = None
        while len(self._ended) > 100_000:
            self._ended.popitem(last=False)
        if session_id in self._cut_local:
            self._cut_local.discard(session_id)
            ended_by = "credit"
        when = ended_at if ended_at is not None else self._clock.now()
        hangup = _Hangup(session_id, when, cause, ended_by, answered_at,
                         uncut and ended_by != "credit")
        try:
            return await self._settle(hangup, live)
        except (RedisError, OSError) as exc:
            self._unsettled[session_id] = hangup
            log.warning("prepaid_settle_deferred", session=session_id, error=str(exc))
            return None

    async def _cut_missed_it(self, session_id: str) -> bool:
        """Did this gateway's cut-off find the call already ended? Waits for a cut-off
        under way: its AMI Hangup answers before the Hangup events it causes, and with
        `No such channel` when the call was gone (then someone else ended it)."""
        task = self._cutting.pop(session_id, None)
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=self._cb_timeout)
        missed = session_id in self._cut_missed
        self._cut_missed.discard(session_id)
        return missed

    async def _settle(self, h: _Hangup, live: _Live | None = None, batch: bool = True) -> Cdr:
        known = None
        answered_at = h.answered_at
        if live is not None:
            if live.fresh:
                known = replace(live.rec, state="live", seq=live.seq, paid_s=live.paid_s,
                                free_s=live.free_s, answer_ms=live.answer_ms)
            elif answered_at is None:  # hung up before its first debit: still answered
                answered_at = live.answer_ms / 1000
        # batched by the ticker when it runs, and never from inside the ticker itself
        batching = batch and self._runner is not None and not self._runner.done()
        cdr = await self._svc.hangup(h.session_id, h.ended_at, h.cause, h.ended_by,
                                     answered_at, known=known, relay_now=False,
                                     uncut=h.uncut,
                                     send=self._queue_settle if batching else None)
        self._wake.set()  # the ticker relays the CDR on its next run
        return cdr

    async def _queue_settle(self, keys_: list[str], args: list[Any]) -> Any:
        """Hand one settle.lua call to the ticker, which sends all queued in one batch."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._settle_q.append((keys_, args, fut))
        self._wake.set()
        return await fut

    async def _flush_settles(self) -> None:
        todo, self._settle_q = self._settle_q, []
        if not todo:
            return
        try:
            replies = await self._transport.settle_many([(k, a) for k, a, _ in todo])
        except BaseException as exc:
            for _, _, fut in todo:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else RedisError(repr(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, fut), reply in zip(todo, replies, strict=True):
            if fut.done():
                continue
            if isinstance(reply, Exception):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    @property
    def unsettled(self) -> int:
        """Hangups waiting for Redis to come back."""
        return len(self._unsettled)

    async def _retry_unsettled(self) -> None:
        for sid, h in list(self._unsettled.items()):
            try:
                await self._settle(h, batch=False)
            except (RedisError, OSError):
                return
            except SessionNotFound:
                log.error("prepaid_settle_lost", session=sid)
            self._unsettled.pop(sid, None)

    async def resume(self) -> ResumeReport:
        """After a restart, and on gaining ownership of an Asterisk (several gateways):
        take the calls this gateway debits back from Redis, with their current state."""
        async with self._resuming:
            return await self._resume()

    async def _resume(self) -> ResumeReport:
        r = self._svc.redis
        members = [text(m) for m in await r.smembers(keys.gateway_live(self._svc.gateway))]
        now_ms = to_ms(self._clock.now())
        live = cut = relayed = waiting = closed = dropped = others = 0
        for i in range(0, len(members), self._batch):
            chunk = members[i:i + self._batch]
            async with r.pipeline(transaction=False) as pipe:
                for sid in chunk:
                    account, _ = keys.split_session_id(sid)
                    pipe.hgetall(keys.session(account, sid))
                rows = await pipe.execute()
            for sid, raw in zip(chunk, rows, strict=True):
                if not raw:
                    await r.srem(keys.gateway_live(self._svc.gateway), sid)
                    dropped += 1
                    continue
                rec = SessionRecord.from_hash(raw)
                # an answer noted by a gateway that did not own the call's Asterisk
                seen_answered = rec.state == "authorized" and rec.answer_ms > 0
                if rec.state == "ended":
                    await self._svc.hangup(sid, rec.end_ms / 1000)  # finishes the relay only
                    relayed += 1
                    continue
                if rec.state == "authorized" and not seen_answered:
                    if now_ms - rec.created_ms > self._stale_auth_ms:
                        await self._svc.hangup(sid, now_ms / 1000, 0, "system")
                        closed += 1
                    else:
                        waiting += 1
                        if sid not in self._ended:
                            self._waiting[sid] = (rec.call_id, rec.created_ms / 1000)
                    continue
                epoch = self._epoch_for(rec.origin)
                mine = self._live.get(sid)
                if sid in self._ended:  # its hangup is being settled here
                    relayed += 1
                elif epoch is None:
                    others += 1
                elif rec.emergency:
                    waiting += 1
                elif rec.cut:
                    if sid not in self._cut_mirrors:
                        self._cut(_Live(rec, rec.answer_ms, rec.seq, rec.paid_s, False,
                                        origin=rec.origin, epoch=epoch), now_ms, again=True)
                        cut += 1
                elif mine is None or mine.epoch != epoch:
                    lv = _Live(rec, rec.answer_ms, rec.seq, rec.paid_s, rec.on_bundle,
                               warned=rec.warned, origin=rec.origin, epoch=epoch,
                               version=mine.version + 1 if mine is not None else 0)
                    self._live[sid] = lv
                    self._push(lv, now_ms)
                    live += 1
        report = ResumeReport(live, cut, relayed, waiting, closed, dropped, others)
        log.info("prepaid_resumed", gateway=self._svc.gateway, live=live, cut=cut,
                 relayed=relayed, waiting=waiting, closed=closed, dropped=dropped,
                 others=others)
        self._wake.set()
        return report

    # -- the loop -------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self.run(), name="prepaid-ticker")
        return self._runner

    async def stop(self) -> None:
        """Stop ticking (live calls stay in Redis for the next start), then settle the
        hangups still queued and relay their CDRs."""
        runner, self._runner = self._runner, None
        if runner is not None:
            # a flag as well as cancel(): a cancellation can be swallowed inside a Redis
            # call that times out at the same moment (asyncio.timeout on 3.11)
            self._stopping = True
            self._wake.set()
            while not runner.done():
                runner.cancel()
                await asyncio.wait({runner}, timeout=0.5)
            self._stopping = False
        for _ in range(3):
            await self._flush_settles()
            if self._unsettled:
                await self._retry_unsettled()
            for _ in range(5):  # let the hangups just settled queue their CDRs
                await asyncio.sleep(0)
            await self._relay()
        await self.idle()

    async def idle(self) -> None:
        """Wait for cut-offs, warnings and events already started."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def next_due(self) -> float | None:
        while self._heap:
            due, _, sid, ver = self._heap[0]
            lv = self._live.get(sid)
            if lv is not None and lv.version == ver:
                return due / 1000
            heapq.heappop(self._heap)
        return None

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            if not self._stopping:  # died: nobody would send them; deferred, not lost
                todo, self._settle_q = self._settle_q, []
                for _, _, fut in todo:
                    if not fut.done():
                        fut.set_exception(RedisError("prepaid ticker stopped"))

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.run_due()
            except Exception:  # never let one bad batch stop every call's debit
                log.exception("prepaid_ticker_error")
                self.stats.errors += 1
            due = self.next_due()
            delay = self._max_idle_s if due is None else due - self._clock.now()
            if self._unsettled:
                delay = min(delay, self._retry_ms / 1000)
            if delay > 0:
                await self._sleep(min(delay, self._max_idle_s))
            else:
                await asyncio.sleep(0)  # never starve the gateway's other work

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    async def run_due(self) -> int:
        """Debit every call due now (renewals up to `coalesce_s` early, cut-off checks never
        early), fire due warnings; returns how many calls were debited."""
        now_ms = to_ms(self._clock.now())
        horizon = now_ms + self._coalesce_ms
        batch: list[_Live] = []
        later: list[_Live] = []
        while self._heap and self._heap[0][0] <= horizon:
            entry = heapq.heappop(self._heap)
            lv = self._live.get(entry[2])
            if lv is None or lv.version != entry[3]:
                continue
            if self._fence is not None and not self._still_ours(lv):
                continue
            if lv.fresh and not lv.warned and lv.rec.warn_s > 0 and self._warn_at(lv) <= horizon:
                self._warn(lv, now_ms)
            end = lv.paid_end_ms
            if lv.short:
                if now_ms >= end:
                    batch.append(lv)
                else:
                    later.append(lv)  # a cut-off check is never early: back at its end
            elif horizon >= end - self._lead_ms:
                batch.append(lv)
            else:
                later.append(lv)
        for lv in later:
            self._push(lv, now_ms)
        if batch:
            batch.sort(key=lambda lv: not lv.short)  # cut-off checks first: they are on time
            t0 = time.perf_counter()
            for i in range(0, len(batch), self._batch):
                await self._debit(batch[i:i + self._batch], now_ms)
            self.stats.runs.append((len(batch), time.perf_counter() - t0))
        # bookkeeping after the debits, never before them
        await self._flush_settles()
        if self._unsettled:
            await self._retry_unsettled()
        await self._relay()
        return len(batch)

    async def _relay(self) -> None:
        items = self._svc.take_relays()
        if not items:
            return
        try:
            await self._transport.relay(items)
        except BaseException as exc:
            self._svc.requeue_relays(items)
            if not isinstance(exc, (RedisError, OSError)):
                raise
            log.warning("prepaid_relay_failed", cdrs=len(items), error=str(exc))

    # -- internals ------------------------------------------------------------------------

    def _target_s(self, lv: _Live, now_ms: int) -> int:
        return ceil_div(now_ms - lv.answer_ms + self._lead_ms + self._ahead_ms, 1000)

    async def _debit(self, lives: list[_Live], now_ms: int) -> None:
        calls = []
        targets = []
        for lv in lives:
            tariff = lv.rec.tariff
            assert tariff is not None
            target = self._target_s(lv, now_ms)
            targets.append(target)
            calls.append((lv.rec.account, lv.rec.session_id, debit_args(
                tariff, lv.rec.bundle, lv.on_bundle, lv.seq, lv.paid_s, lv.answer_ms,
                now_ms, target, lv.epoch, lv.origin,
            )))
        self.stats.batches += 1
        try:
            replies = await self._transport.debit_many(calls)
        except (RedisError, OSError) as exc:
            self.stats.errors += 1
            log.warning("prepaid_tick_failed", sessions=len(lives), error=str(exc))
            for lv in lives:
                self._unreachable(lv, now_ms)
            return
        self.stats.debits += len(lives)
        for lv, reply, target in zip(lives, replies, targets, strict=True):
            if isinstance(reply, Exception):
                log.error("prepaid_debit_error", session=lv.rec.session_id, error=str(reply))
                self._unreachable(lv, now_ms)
            else:
                self._apply(lv, reply, now_ms, target)

    def _unreachable(self, lv: _Live, now_ms: int) -> None:
        if lv.rec.session_id not in self._live:
            return
        if self._cut_unreachable and now_ms >= lv.paid_end_ms:
            self._cut_local.add(lv.rec.session_id)
            self._cut(lv, now_ms)
            return
        lv.version += 1
        heapq.heappush(
            self._heap, (now_ms + self._retry_ms, next(self._tie), lv.rec.session_id, lv.version)
        )

    def _apply(self, lv: _Live, reply: DebitReply, now_ms: int, target_s: int) -> None:
        sid = lv.rec.session_id
        if self._live.get(sid) is not lv:
            return  # hung up while the debit was in flight
        if reply.status in ("ended", "missing"):
            self._live.pop(sid, None)
            return
        if reply.status == "fenced":  # a newer owner of its Asterisk debits it now
            self._live.pop(sid, None)
            lv.version += 1
            log.warning("prepaid_debit_fenced", call_id=lv.rec.call_id, session=sid,
                        asterisk=lv.origin, epoch=lv.epoch)
            return
        if reply.status == "ok":  # one line per applied debit (audits count them)
            log.debug("prepaid_debited", session=sid, seq=reply.seq, paid_s=reply.paid_s,
                      charged=reply.charged, epoch=lv.epoch)
        lv.seq, lv.paid_s, lv.balance = reply.seq, reply.paid_s, reply.balance
        lv.bundle_left, lv.on_bundle = reply.bundle_left, reply.on_bundle
        lv.free_s = reply.free_s
        lv.fresh = True
        if reply.cut:
            self._cut(lv, now_ms)
            return
        lv.short = reply.status == "ok" and reply.paid_s < target_s
        low = lv.rec.low_balance
        if low and not lv.low_sent and reply.balance < low:
            lv.low_sent = True
            self._spawn(self._events.publish(EV_LOW_BALANCE, self._payload(lv)),
                        "prepaid_event", lv)
        self._push(lv, now_ms)

    def _warn_at(self, lv: _Live) -> int:
        tariff = lv.rec.tariff
        assert tariff is not None
        extra = tariff.seconds_for(lv.balance, lv.paid_end_ms / 1000)
        if lv.on_bundle:
            extra += lv.bundle_left
        return lv.paid_end_ms + (extra - lv.rec.warn_s) * 1000

    def _push(self, lv: _Live, now_ms: int) -> None:
        end = lv.paid_end_ms
        due = end if lv.short else end - self._lead_ms
        if lv.fresh and not lv.warned and lv.rec.warn_s > 0:
            due = min(due, max(self._warn_at(lv), now_ms))
        lv.version += 1
        heapq.heappush(self._heap, (due, next(self._tie), lv.rec.session_id, lv.version))

    def _warn(self, lv: _Live, now_ms: int) -> None:
        lv.warned = True
        rec = lv.rec
        self.stats.warnings += 1
        left_s = (self._warn_at(lv) - now_ms) // 1000 + rec.warn_s
        log.info("prepaid_warning", call_id=rec.call_id, card=rec.account, tenant=rec.tenant,
                 seconds_left=left_s, to=rec.warn_to)
        self._spawn(self._warn_calls(lv, left_s), "prepaid_warning", lv)

    async def _warn_calls(self, lv: _Live, left_s: int) -> None:
        rec = lv.rec
        await self._control.play_warning(rec.call_id, rec.warn_to)
        await self._svc.redis.hset(keys.session(rec.account, rec.session_id), "warned", "1")
        await self._events.publish(EV_WARNING, {**self._payload(lv), "seconds_left": left_s,
                                                "to": rec.warn_to})

    def _cut(self, lv: _Live, now_ms: int, again: bool = False) -> None:
        rec = lv.rec
        self._live.pop(rec.session_id, None)
        lv.version += 1
        if lv.fresh:  # its hangup follows: settle it from what we know, no read back
            self._cut_mirrors[rec.session_id] = lv
            while len(self._cut_mirrors) > 100_000:
                self._cut_mirrors.pop(next(iter(self._cut_mirrors)))
        self.stats.cut_offs += 1
        self.stats.cut_late_ms.append(now_ms - lv.paid_end_ms)
        log.info("prepaid_cut_off", call_id=rec.call_id, card=rec.account, tenant=rec.tenant,
                 session=rec.session_id, late_ms=now_ms - lv.paid_end_ms, reissued=again)
        sid = rec.session_id
        task = self._spawn(self._cut_calls(lv, again), "prepaid_cut_off", lv)
        self._cutting[sid] = task
        task.add_done_callback(lambda t: self._cutting.pop(sid, None)
                               if self._cutting.get(sid) is t else None)

    async def _cut_calls(self, lv: _Live, again: bool = False) -> None:
        hit = await self._control.cut_off(lv.rec.call_id)
        if hit is False and not again:  # a re-issued cut-off may have worked the first time
            self._cut_missed.add(lv.rec.session_id)
            log.info("prepaid_cut_off_missed", call_id=lv.rec.call_id,
                     session=lv.rec.session_id, detail="the call had already ended")
            return
        await self._events.publish(EV_CUT_OFF, self._payload(lv))

    def _payload(self, lv: _Live) -> dict[str, Any]:
        rec = lv.rec
        return {
            "session_id": rec.session_id, "call_id": rec.call_id, "account": rec.account,
            "tenant": rec.tenant, "balance": lv.balance,
            "currency": rec.tariff.currency if rec.tariff else "",
        }

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str,
               lv: _Live) -> asyncio.Task[None]:
        task = asyncio.create_task(self._guard(coro, what, lv))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guard(self, coro: Coroutine[Any, Any, None], what: str, lv: _Live) -> None:
        try:
            await asyncio.wait_for(coro, self._cb_timeout)
        except (Exception, TimeoutError) as exc:
            log.error(f"{what}_failed", call_id=lv.rec.call_id, card=lv.rec.account,
                      error=repr(exc))


__all__ = ["DebitScheduler", "Fence", "ResumeReport", "SessionNotFound", "TickStats"]

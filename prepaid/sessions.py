"""Prepaid call sessions: authorize, settle, CDR; the Redis side of live debit.

What the gateway calls, and when (the ticker, prepaid.scheduler.DebitScheduler, does the
rest):

- FastAGI `prepaid` / `authorize` with `card=` (after `PinGuard.verify_pin` in the IVR):
  `authorize(AuthorizeRequest)` -> `Authorization`; `.variables()` are the channel
  variables CALLGATE_RESULT/REASON/CAUSE/LEASE/MAXSEC. On ALLOW a session is open in Redis
  (LEASE = its id), no money held yet. The gateway passes its limits lease id
  (`AuthorizeRequest.lease`): the session is then `ACCOUNT~LEASE` and
  `session_for_lease(lease)` finds it, so one CALLGATE_LEASE names slots and session.
- AMI answer of the dialled leg: `DebitScheduler.answered(session_id, answered_at)`.
- AMI Hangup / the `release` hook: `DebitScheduler.hung_up(session_id, ended_at, cause,
  ended_by)` -> `Cdr`. After a restart, for calls that ended while the gateway was down,
  the same with the channel's own times (`answered_at` too if the answer was missed).
  `hangup()` here does the same without a ticker (CLI, another gateway). Idempotent.

Emergency numbers (`is_emergency`, the predicate limits/ uses) are always allowed, with no
time limit, and never charged (invariant 3), whatever the card's state or balance.
"""

from __future__ import annotations

import json
import re
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from redis.exceptions import RedisError

from prepaid import keys
from prepaid.bundles import cycle_day_of, effective_left
from prepaid.cards import Card, CardStatus
from prepaid.cdr import (
    RELAY_CHUNK,
    Cdr,
    CdrStore,
    RelayItem,
    appended,
    cdr_head,
    queue_appends,
    queue_cleanups,
)
from prepaid.clock import Clock, to_ms
from prepaid.control import ENDED_BY, EV_CALL_ENDED, EndedBy, EventSink, NoEvents
from prepaid.debit import BundleSpec, DebitReply, SessionRecord, debit_keys
from prepaid.errors import BadInput, PlanNotFound, PrepaidError, SessionNotFound
from prepaid.money import ceil_div
from prepaid.rateplan_store import RatePlanCache
from prepaid.rating import DEFAULT_MAX_CALL_S, Price, normalize_number
from prepaid.replies import text
from prepaid.scripts import PrepaidScripts, RedisClient, evalsha, noscript

log = structlog.get_logger(__name__)

KEEP_ENDED_S = 7 * 86400
SettleSender = Callable[[list[str], list[Any]], Awaitable[Any]]
CALL_REF_TTL_S = 86400


def _never(number: str) -> bool:
    return False


@dataclass(frozen=True)
class AuthorizeRequest:
    account: str  # card number or tenant account id (tenant.<T>)
    destination: str
    call_id: str  # Asterisk uniqueid of the calling channel
    caller: str = ""
    tenant: str | None = None  # when given, the account must belong to it (invariant 4)
    # the gateway's limits lease id: the session is then ACCOUNT~LEASE, so one
    # CALLGATE_LEASE names both, and `session_for_lease` finds it again
    lease: str = ""


@dataclass(frozen=True)
class Authorization:
    allowed: bool
    reason: str  # CALLGATE_REASON word
    cause: int  # Q.850 cause on deny, 0 on allow
    max_seconds: int  # CALLGATE_MAXSEC, 0 = no limit
    session_id: str = ""  # CALLGATE_LEASE
    balance: int = 0  # available, for the IVR's announcement
    currency: str = ""
    destination_name: str = ""
    prefix: str = ""
    rate: int = 0  # per minute now, 1/RATE_SCALE minor units
    detail: str = ""  # finer than reason, for logs: unknown_card, expired, on_hold ...

    def variables(self) -> dict[str, str]:
        return {
            "CALLGATE_RESULT": "ALLOW" if self.allowed else "DENY",
            "CALLGATE_REASON": self.reason,
            "CALLGATE_CAUSE": str(self.cause) if not self.allowed else "",
            "CALLGATE_LEASE": self.session_id,
            "CALLGATE_MAXSEC": str(self.max_seconds),
        }


@dataclass
class _Denied(Exception):
    reason: str
    cause: int
    detail: str
    card: Card | None = field(default=None)


class SessionService:
    def __init__(
        self,
        redis: RedisClient,
        plans: RatePlanCache,
        clock: Clock,
        *,
        gateway: str,
        is_emergency: Callable[[str], bool] = _never,
        events: EventSink | None = None,
        scripts: PrepaidScripts | None = None,
        max_call_s: int = DEFAULT_MAX_CALL_S,
        keep_ended_s: int = KEEP_ENDED_S,
    ) -> None:
        self.redis = redis
        self._plans = plans
        self.clock = clock
        self.gateway = keys.check_id("gateway", gateway)
        self._is_emergency = is_emergency
        self._events = events or NoEvents()
        self.scripts = scripts or PrepaidScripts.register(redis)
        self.cdrs = CdrStore(redis, self.scripts)
        self._max_call_s = max_call_s
        self._keep_ended_s = keep_ended_s
        self._to_relay: list[RelayItem] = []
        # sessions opened here, until answered: saves reading them back on the answer
        self._opened: OrderedDict[str, SessionRecord] = OrderedDict()
        self._opened_max = 100_000

    # -- authorize ------------------------------------------------------------------------

    async def authorize(self, req: AuthorizeRequest) -> Authorization:
        blog = log.bind(call_id=req.call_id, card=req.account, tenant=req.tenant)
        if self._is_emergency(req.destination):
            return await self._authorize_emergency(req, blog)
        try:
            auth = await self._authorize(req)
        except _Denied as d:
            blog.info("prepaid_denied", reason=d.reason, detail=d.detail,
                      dest=req.destination)
            card = d.card
            return Authorization(
                False, d.reason, d.cause, 0, balance=card.balance if card else 0,
                currency=card.currency if card else "", detail=d.detail,
            )
        blog.info("prepaid_authorized", session=auth.session_id, dest=req.destination,
                  prefix=auth.prefix, max_s=auth.max_seconds, balance=auth.balance)
        return auth

    async def _load_card(self, req: AuthorizeRequest) -> Card:
        try:
            keys.check_id("card", req.account)
        except BadInput:
            raise _Denied("card_blocked", 21, "bad_card_id") from None
        raw = await self.redis.hgetall(keys.card(req.account))
        if not raw:
            raise _Denied("card_blocked", 21, "unknown_card")
        card = Card.from_hash(raw)
        if req.tenant is not None and card.tenant != req.tenant:
            raise _Denied("card_blocked", 21, "other_tenant")
        return card

    async def _authorize(self, req: AuthorizeRequest) -> Authorization:
        now = self.clock.now()
        now_ms = to_ms(now)
        card = await self._load_card(req)
        if card.status is CardStatus.ACTIVE or card.status is CardStatus.SOLD:
            if card.expired_at(now_ms):
                await self.redis.hset(keys.card(card.id), "status", CardStatus.EXPIRED.value)
                log.info("card_expired", card=card.id, tenant=card.tenant)
                raise _Denied("card_blocked", 21, "expired", card)
        elif card.status is CardStatus.HOLD:
            raise _Denied("no_credit", 21, "on_hold", card)
        else:
            raise _Denied("card_blocked", 21, card.status.value, card)
        try:
            plan = await self._plans.get(card.plan)
        except PlanNotFound:
            log.error("prepaid_plan_missing", card=card.id, plan=card.plan)
            raise _Denied("no_route", 21, "no_plan", card) from None
        digits = normalize_number(req.destination) or ""
        entry = plan.lookup(digits)
        if entry is None:
            raise _Denied("no_route", 1, "not_in_plan", card)
        if card.allow and not any(digits.startswith(p) for p in card.allow):
            raise _Denied("no_route", 21, "not_allowed", card)
        if plan.settings.currency != card.currency:
            log.error("prepaid_currency_mismatch", card=card.id, plan=plan.name)
            raise _Denied("no_route", 21, "currency_mismatch", card)
        tariff = plan.tariff(entry)
        settings = plan.settings
        bundle = settings.bundle if settings.bundle and settings.bundle.covers(digits) else None
        cycle_day = card.cycle_day or cycle_day_of(now, settings.bands.timezone)
        spec: BundleSpec | None = None
        bundle_left = 0
        if bundle is not None and bundle.minutes > 0:
            spec = BundleSpec(bundle.allowance_s, bundle.rollover_cap_s, cycle_day,
                              settings.bands.timezone)
            bundle_left = effective_left(bundle, card.bundle_left, card.bundle_period, now,
                                         cycle_day, settings.bands.timezone)
        max_s = tariff.affordable_seconds(now_ms, card.balance, bundle_left, self._max_call_s)
        if max_s <= 0:
            raise _Denied("no_credit", 21, "balance", card)

        sid = _session_id(card.id, req.lease)
        expires_ms = ""
        if card.status is CardStatus.SOLD and card.valid_days:
            first_use_expiry = now_ms + card.valid_days * 86400_000
            expires_ms = str(min(first_use_expiry, card.expires_ms or first_use_expiry))
        meta = {
            "sid": sid, "account": card.id, "tenant": card.tenant, "call_id": req.call_id,
            "caller": req.caller, "dest": digits, "prefix": entry.prefix,
            "dname": entry.destination, "owner": self.gateway, "created_ms": now_ms,
            "tariff": tariff.to_json(), "warn_s": settings.warn_seconds,
            "warn_to": card.warn_to or settings.warn_to, "low": settings.low_balance,
            "bspec": spec.to_json() if spec else "", "emergency": False,
            "allowance": tariff.increment_allowance(), "plan": plan.name,
            "max_s": max_s,
        }
        fields = _session_fields(
            meta, bundle=spec is not None, fee=entry.connection_fee,
            tax_bp=",".join(str(t.basis_points) for t in tariff.taxes if t.basis_points),
            tax_fixed=sum(t.fixed for t in tariff.taxes),
        )
        status = await self._open(card.id, sid, req.call_id, now_ms, cycle_day, expires_ms,
                                  False, fields, req.lease)
        if status != "ok":
            raise _Denied("card_blocked", 21, f"open_{status}", card)
        self._remember(SessionRecord.from_hash(fields))
        return Authorization(
            True, "ok", 0, max_s, sid, card.balance, card.currency, entry.destination,
            entry.prefix, entry.rate_for(tariff.band_at(now)),
        )

    async def _open(
        self, account: str, sid: str, call_id: str, now_ms: int, cycle_day: int,
        expires_ms: str, emergency: bool, fields: dict[str, str | int], lease: str = "",
    ) -> str:
        """One round trip: the gateway's index first (a crash right after it leaves a
        pointer resume() can check, never an unindexed session), the session, the call ref."""
        args = [sid, now_ms, cycle_day, expires_ms, "1" if emergency else "0",
                *(x for kv in fields.items() for x in kv)]
        for _ in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.sadd(keys.gateway_live(self.gateway), sid)
                evalsha(pipe, self.scripts.session_open,
                        [keys.card(account), keys.session(account, sid),
                         keys.card_live(account)], args)
                pipe.set(keys.call_ref(call_id), sid, ex=CALL_REF_TTL_S)
                if lease:
                    pipe.set(keys.lease_ref(lease), sid, ex=CALL_REF_TTL_S)
                res = await pipe.execute(raise_on_error=False)
            if not noscript(res):
                break
            await self.scripts.load()
        for r in res:
            if isinstance(r, Exception):
                raise r
        status = text(res[1][0])
        if status != "ok":
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.srem(keys.gateway_live(self.gateway), sid)
                pipe.delete(keys.call_ref(call_id))
                if lease:
                    pipe.delete(keys.lease_ref(lease))
                await pipe.execute()
        return status

    async def _authorize_emergency(self, req: AuthorizeRequest, blog: Any) -> Authorization:
        """Always ALLOW, no limit, no charge; a session (for the CDR) when the account exists."""
        sid = ""
        try:
            keys.check_id("card", req.account)
            raw = await self.redis.hgetall(keys.card(req.account))
            if raw:
                card = Card.from_hash(raw)
                now_ms = to_ms(self.clock.now())
                sid = _session_id(card.id, req.lease)
                meta = {
                    "sid": sid, "account": card.id, "tenant": card.tenant,
                    "call_id": req.call_id, "caller": req.caller,
                    "dest": req.destination.strip()[:40], "prefix": "", "dname": "emergency",
                    "owner": self.gateway, "created_ms": now_ms, "emergency": True,
                    "allowance": 0, "plan": card.plan,
                }
                fields = _session_fields(meta, bundle=False, fee=0, tax_bp="", tax_fixed=0)
                if await self._open(card.id, sid, req.call_id, now_ms, card.cycle_day or 1,
                                    "", True, fields, req.lease) != "ok":
                    sid = ""
        except (BadInput, RedisError) as exc:
            blog.warning("prepaid_emergency_unrecorded", error=str(exc))
            sid = ""
        blog.warning("prepaid_emergency_allowed", dest=req.destination, session=sid)
        return Authorization(True, "emergency", 0, 0, sid)

    # -- sessions -------------------------------------------------------------------------

    def _remember(self, rec: SessionRecord) -> None:
        self._opened[rec.session_id] = rec
        while len(self._opened) > self._opened_max:
            self._opened.popitem(last=False)

    async def opened(self, session_id: str) -> SessionRecord:
        """The session as authorized here (no round trip), else as stored in Redis."""
        rec = self._opened.pop(session_id, None)
        return rec if rec is not None else await self.get(session_id)

    async def get(self, session_id: str) -> SessionRecord:
        account, _ = keys.split_session_id(session_id)
        raw = await self.redis.hgetall(keys.session(account, session_id))
        if not raw:
            raise SessionNotFound(session_id)
        return SessionRecord.from_hash(raw)

    async def session_for_call(self, call_id: str) -> str | None:
        v = await self.redis.get(keys.call_ref(call_id))
        return text(v) or None

    async def session_for_lease(self, lease: str) -> str | None:
        """The session opened under this limits lease id, if any (None for a plain call)."""
        if not lease or not _LEASE_RE.match(lease):
            return None
        v = await self.redis.get(keys.lease_ref(lease))
        return text(v) or None

    async def debit_many(
        self,
        calls: Sequence[tuple[str, str, list[int | str]]],
        client: RedisClient | None = None,
    ) -> list[DebitReply | Exception]:
        """(account, session id, debit_args) each, in one pipeline (the ticker's batch).
        `client`: the ticker's own connection, so call set-up traffic cannot delay debits."""
        raw = await self._debit_pipeline(calls, client)
        redo = noscript(raw)
        if redo:  # Redis restarted with an empty script cache: load, then redo those only
            await self.scripts.load()
            again = await self._debit_pipeline([calls[i] for i in redo], client)
            for i, r in zip(redo, again, strict=True):
                raw[i] = r
        return [r if isinstance(r, Exception) else DebitReply.parse(r) for r in raw]

    async def _debit_pipeline(
        self, calls: Sequence[tuple[str, str, list[int | str]]], client: RedisClient | None
    ) -> list[Any]:
        async with (client or self.redis).pipeline(transaction=False) as pipe:
            for account, sid, args in calls:
                evalsha(pipe, self.scripts.debit, debit_keys(account, sid), args)
            return list(await pipe.execute(raise_on_error=False))

    async def mark_answered(self, rec: SessionRecord, answer_ms: int) -> None:
        """An emergency call (never debited) records its answer for the CDR."""
        key = keys.session(rec.account, rec.session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "answer_ms", answer_ms)
            pipe.hset(key, "state", "live")
            await pipe.execute()

    # -- settle ---------------------------------------------------------------------------

    async def hangup(
        self,
        session_id: str,
        ended_at: float,
        cause: int = 16,
        ended_by: EndedBy = "caller",
        answered_at: float | None = None,
        *,
        known: SessionRecord | None = None,
        relay_now: bool = True,
        send: SettleSender | None = None,
        uncut: bool = False,
    ) -> Cdr:
        """Settle the call and write its CDR, exactly once; a replay returns the same CDR.

        `answered_at` is for a call whose answer this gateway never saw (it was down).
        `known` is the ticker's up-to-date view of the session: it saves reading it back (if
        it is stale, the settlement says so and the session is read). With `relay_now`
        False the CDR stays in the account's outbox until `flush_relays()` sends many in
        one round trip (the ticker does so every run). `send` runs settle.lua (keys, args)
        and returns its reply: the ticker batches settlements of many hangups with it.

        A session marked cut (`credit`) is settled as ended by the credit cut-off unless
        `uncut`: the ticker says it had not cut the call when it hung up, so the mark came
        from a debit that ran after the call had already ended (a gateway frozen past the
        end of the credit, then woken) and `ended_by` says who really ended it.

        `answered_at` is only used when the session has no answer time of its own: that one
        is the callee's answer as the gateway saw it, exact; the `h` extension's
        ANSWEREDTIME_MS the gateway derives `answered_at` from after a restart is the calling
        channel's up time, which counts more when the caller was answered first."""
        if ended_by not in ENDED_BY:
            raise BadInput(f"ended_by {ended_by!r} must be one of {', '.join(ENDED_BY)}")
        for _ in range(10):
            rec = known if known is not None else await self.get(session_id)
            known = None
            if rec.state == "ended":
                cdr = Cdr.from_json(rec.cdr)
                await self.relay_async([self._relay_item(rec, rec.cdr, cdr.end_ms)])
                return cdr
            answer_ms = rec.answer_ms or (to_ms(answered_at) if answered_at is not None else 0)
            end_ms = to_ms(ended_at)
            if answer_ms and end_ms < answer_ms:
                end_ms = answer_ms
            duration = ceil_div(end_ms - answer_ms, 1000) if answer_ms else 0
            tariff = rec.tariff
            if rec.emergency or not answer_ms or tariff is None:
                price = Price(0, 0, 0, 0, (), 0)
            else:
                price = tariff.price(answer_ms, duration, rec.free_s)
            band = tariff.band_at(answer_ms / 1000) if tariff and answer_ms else ""
            head = cdr_head({
                "session_id": rec.session_id, "call_id": rec.call_id, "account": rec.account,
                "tenant": rec.tenant, "caller": rec.caller, "destination": rec.destination,
                "prefix": rec.prefix, "destination_name": rec.destination_name,
                "plan": tariff.plan if tariff else "",
                "currency": tariff.currency if tariff else "",
                "rate": tariff.entry.rate_for(band) if tariff and band else 0, "band": band,
                "start_ms": rec.created_ms, "answer_ms": answer_ms, "end_ms": end_ms,
                "duration_s": duration, "billable_s": price.billable_s, "free_s": price.free_s,
                "net": price.net, "taxes": [[t.name, t.amount] for t in price.taxes],
                "total": price.total, "hangup_cause": int(cause), "emergency": rec.emergency,
                "gateway": self.gateway,
            })
            day = datetime.fromtimestamp(end_ms / 1000, UTC).strftime("%Y%m%d")
            settle_keys = [
                keys.card(rec.account), keys.session(rec.account, rec.session_id),
                keys.card_live(rec.account), keys.cdr_outbox(rec.account),
                keys.spend(rec.account),
            ]
            settle_args: list[Any] = [
                rec.seq, price.total, price.free_s, rec.allowance, head, day,
                self._keep_ended_s, end_ms, ended_by, rec.session_id,
                answer_ms if answer_ms and not rec.answer_ms else "",
                "1" if uncut else "",
            ]
            if send is not None:
                res = await send(settle_keys, settle_args)
            else:
                res = await self.scripts.settle(keys=settle_keys, args=settle_args)
            status = text(res[0])
            if status == "retry":
                continue
            if status == "missing":
                raise SessionNotFound(session_id)
            cdr_json = text(res[1])
            cdr = Cdr.from_json(cdr_json)
            item = self._relay_item(rec, cdr_json, cdr.end_ms)
            if relay_now:
                await self.relay_async([item])
            else:
                self._to_relay.append(item)
            if status == "ok":
                self._log_settled(cdr)
                await self._events.publish(EV_CALL_ENDED, {
                    "session_id": cdr.session_id, "call_id": cdr.call_id,
                    "account": cdr.account, "tenant": cdr.tenant, "charge": cdr.charge,
                    "currency": cdr.currency, "billable_s": cdr.billable_s,
                    "ended_by": cdr.ended_by, "balance": cdr.balance_after,
                })
            return cdr
        raise PrepaidError(f"session {session_id} kept changing while being settled")

    def _log_settled(self, cdr: Cdr) -> None:
        blog = log.bind(call_id=cdr.call_id, card=cdr.account, tenant=cdr.tenant)
        blog.info("prepaid_settled", session=cdr.session_id, billable_s=cdr.billable_s,
                  charge=cdr.charge, ended_by=cdr.ended_by, balance=cdr.balance_after)
        if cdr.uncollected:
            blog.warning("prepaid_charge_capped", session=cdr.session_id,
                         uncollected=cdr.uncollected, total=cdr.total)

    async def settle_many(self, calls: Sequence[tuple[list[str], list[Any]]]) -> list[Any]:
        """settle.lua for many hangups in one pipeline: (keys, args) each, raw replies."""
        for _ in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for k, a in calls:
                    evalsha(pipe, self.scripts.settle, k, a)
                res = list(await pipe.execute(raise_on_error=False))
            if not noscript(res):
                return res
            await self.scripts.load()  # nothing ran: safe to send again
        return res

    def _relay_item(self, rec: SessionRecord, cdr_json: str, end_ms: int) -> RelayItem:
        return RelayItem(rec.account, rec.session_id, rec.owner or self.gateway, end_ms,
                         cdr_json)

    def take_relays(self) -> list[RelayItem]:
        """CDRs settled with relay_now=False, for the ticker to relay in bulk."""
        todo, self._to_relay = self._to_relay, []
        return todo

    def requeue_relays(self, items: Sequence[RelayItem]) -> None:
        self._to_relay.extend(items)  # still in the outboxes: nothing is lost meanwhile

    async def flush_relays(self) -> int:
        """Relay CDRs of hangups settled with relay_now=False; returns how many."""
        todo = self.take_relays()
        try:
            await self.relay_async(todo)
        except BaseException:
            self.requeue_relays(todo)
            raise
        return len(todo)

    async def relay_async(self, items: Sequence[RelayItem]) -> None:
        """Relay CDRs to the stream (exactly once), then clear their outbox entries and the
        gateways' pointers, on the asyncio client; safe to repeat."""
        for i in range(0, len(items), RELAY_CHUNK):
            chunk = items[i:i + RELAY_CHUNK]
            for _ in range(2):
                async with self.redis.pipeline(transaction=False) as pipe:
                    queue_appends(pipe, self.scripts.cdr_append.sha, chunk)
                    res = await pipe.execute(raise_on_error=False)
                if not noscript(res):
                    break
                await self.scripts.load()
            done = appended(chunk, res)
            if done:
                async with self.redis.pipeline(transaction=False) as pipe:
                    queue_cleanups(pipe, done)
                    await pipe.execute()
            for r in res:
                if isinstance(r, Exception):
                    raise r

_LEASE_RE = re.compile(r"^[0-9a-f]{8,32}$")


def _session_id(account: str, lease: str) -> str:
    """ACCOUNT~LEASE when the gateway gives its lease id, else ACCOUNT~random."""
    if lease:
        if not _LEASE_RE.match(lease):
            raise BadInput(f"lease id {lease!r} must be 8-32 lowercase hex digits")
        return keys.new_session_id(account, lease)
    return keys.new_session_id(account, secrets.token_hex(6))


def _session_fields(
    meta: dict[str, Any], *, bundle: bool, fee: int, tax_bp: str, tax_fixed: int
) -> dict[str, str | int]:
    """A new session: the fields the scripts use, and `meta` (JSON) for the rest."""
    return {
        "state": "authorized", "seq": 0, "paid_s": 0, "exact": 0, "charged": 0, "free_s": 0,
        "bundle": "1" if bundle else "0", "fee": fee, "tax_bp": tax_bp,
        "tax_fixed": tax_fixed, "cut": "", "meta": json.dumps(meta, separators=(",", ":")),
    }

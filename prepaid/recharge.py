"""Auto recharge of tenant prepaid accounts, sized from the account's own use.

Average daily spend = what CDRs charged over the last 30 UTC days (today included) / 30,
rounded up. When the available balance falls below 7 days of it, the funding hook is asked
for 14 days of it (at least `min_recharge`). Every attempt is recorded
(`callgate:{card:ID}:recharges`); a failure puts the account on hold (new calls refused with
`no_credit`), publishes `prepaid.recharge_failed` and logs `recharge_failed`, so the tenant
and the operator both see why calls stopped. One recharge runs at a time per account.
An account with no spend in the window is never recharged: there is nothing to size it on.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog

from prepaid import keys
from prepaid.cards import CardService, CardStatus
from prepaid.clock import Clock, to_ms
from prepaid.control import EV_RECHARGE_FAILED, EV_RECHARGED, EventSink, NoEvents
from prepaid.funding_hooks import FundingHook, FundingRequest, FundingResult
from prepaid.money import ceil_div
from prepaid.replies import as_int, text
from prepaid.scripts import RedisClient

log = structlog.get_logger(__name__)


class RechargeStatus(StrEnum):
    NOT_NEEDED = "not_needed"
    NO_HISTORY = "no_history"
    RECHARGED = "recharged"
    FAILED = "failed"
    ON_HOLD = "on_hold"  # already on hold: an operator (or a manual topup) must act
    BUSY = "busy"  # another recharge of this account is running


@dataclass(frozen=True)
class RechargeOutcome:
    account: str
    status: RechargeStatus
    daily_average: int = 0
    threshold: int = 0
    amount: int = 0
    balance: int = 0
    message: str = ""


class AutoRecharger:
    def __init__(
        self,
        redis: RedisClient,
        cards: CardService,
        hook: FundingHook,
        clock: Clock,
        *,
        events: EventSink | None = None,
        window_days: int = 30,
        threshold_days: int = 7,
        recharge_days: int = 14,
        min_recharge: int = 0,
        lock_s: int = 300,
    ) -> None:
        self._r = redis
        self._cards = cards
        self._hook = hook
        self._clock = clock
        self._events = events or NoEvents()
        self._window = window_days
        self._threshold_days = threshold_days
        self._recharge_days = recharge_days
        self._min = min_recharge
        self._lock_s = lock_s

    async def daily_average(self, account: str) -> int:
        today = datetime.fromtimestamp(self._clock.now(), UTC).date()
        days = [(today - timedelta(days=i)).strftime("%Y%m%d") for i in range(self._window)]
        spent = await self._r.hmget(keys.spend(account), days)
        return ceil_div(sum(as_int(v) for v in spent), self._window)

    async def check(self, account: str) -> RechargeOutcome:
        """Call after a tenant account's calls end, or periodically (`check_all`)."""
        card = await self._cards.get(account)
        if card.status is CardStatus.HOLD:
            return RechargeOutcome(account, RechargeStatus.ON_HOLD, balance=card.balance,
                                   message=card.hold_reason)
        avg = await self.daily_average(account)
        if avg <= 0:
            return RechargeOutcome(account, RechargeStatus.NO_HISTORY, balance=card.balance)
        threshold = avg * self._threshold_days
        if card.balance >= threshold:
            return RechargeOutcome(account, RechargeStatus.NOT_NEEDED, avg, threshold,
                                   balance=card.balance)
        amount = max(avg * self._recharge_days, self._min)
        lock = keys.recharge_lock(account)
        if not await self._r.set(lock, "1", nx=True, ex=self._lock_s):
            return RechargeOutcome(account, RechargeStatus.BUSY, avg, threshold, amount)
        try:
            reference = f"recharge:{account}:{secrets.token_hex(8)}"
            request = FundingRequest(account, card.tenant, amount, card.currency, reference)
            try:
                result = await self._hook.fund(request)
            except Exception as exc:  # a broken hook is a failed recharge, not a crash
                result = FundingResult(False, message=f"funding hook raised {exc!r}")
            if result.ok:
                credit = await self._cards.credit(account, amount, reference, card.currency,
                                                  release_hold=True)
                await self._record(account, request, result)
                log.info("recharged", card=account, tenant=card.tenant, amount=amount,
                         reference=reference, balance=credit.balance)
                await self._events.publish(EV_RECHARGED, {
                    "account": account, "tenant": card.tenant, "amount": amount,
                    "currency": card.currency, "balance": credit.balance,
                })
                return RechargeOutcome(account, RechargeStatus.RECHARGED, avg, threshold,
                                       amount, credit.balance)
            reason = f"auto recharge of {amount} {card.currency} failed: {result.message}"
            await self._hold(account, reason)
            await self._record(account, request, result)
            log.warning("recharge_failed", card=account, tenant=card.tenant, amount=amount,
                        reason=result.message)
            await self._events.publish(EV_RECHARGE_FAILED, {
                "account": account, "tenant": card.tenant, "amount": amount,
                "currency": card.currency, "message": result.message, "on_hold": True,
            })
            return RechargeOutcome(account, RechargeStatus.FAILED, avg, threshold, amount,
                                   card.balance, reason)
        finally:
            await self._r.delete(lock)

    async def check_all(self) -> list[RechargeOutcome]:
        out = []
        for acc in sorted(text(a) for a in await self._r.smembers(keys.AUTORECHARGE)):
            try:
                out.append(await self.check(acc))
            except Exception as exc:
                log.error("recharge_check_error", card=acc, error=repr(exc))
        return out

    async def history(self, account: str, count: int = 20) -> list[dict[str, Any]]:
        raw = await self._r.lrange(keys.recharges(account), 0, count - 1)
        return [json.loads(text(r)) for r in raw]

    async def _hold(self, account: str, reason: str) -> None:
        card = await self._cards.get(account)
        if card.status is CardStatus.ACTIVE:
            await self._r.hset(keys.card(account),
                               mapping={"status": CardStatus.HOLD.value, "hold_reason": reason})

    async def _record(self, account: str, req: FundingRequest, res: FundingResult) -> None:
        entry = {
            "at_ms": to_ms(self._clock.now()), "amount": req.amount, "currency": req.currency,
            "reference": req.reference, "ok": res.ok, "funder_reference": res.reference,
            "message": res.message,
        }
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.lpush(keys.recharges(account), json.dumps(entry))
            pipe.ltrim(keys.recharges(account), 0, 99)
            await pipe.execute()

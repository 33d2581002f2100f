"""Cards and tenant accounts: one record each, the life cycle, credits, booths.

Life cycle of a card: created (printed, not sold) -> sold -> active (first call) ->
blocked (by an operator; unblock returns it) or expired (past its expiry). Only sold and
active cards may call; blocking a card also stops its calls at their next debit.
Tenant prepaid accounts (`tenant.<T>`) use the same record with kind `tenant`; they are
active or on hold (a failed auto recharge).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from prepaid import keys
from prepaid.clock import Clock, to_ms
from prepaid.control import WarnTarget, check_warn_target
from prepaid.errors import BadInput, CardNotFound, CardStateError, CurrencyMismatch
from prepaid.replies import as_int, str_dict, text
from prepaid.scripts import PrepaidScripts, RedisClient

log = structlog.get_logger(__name__)


class CardStatus(StrEnum):
    CREATED = "created"
    SOLD = "sold"
    ACTIVE = "active"
    BLOCKED = "blocked"
    EXPIRED = "expired"
    HOLD = "hold"


CREDITABLE = "created,sold,active,hold"


@dataclass(frozen=True)
class Card:
    id: str
    kind: str  # card | tenant
    tenant: str
    plan: str
    currency: str
    balance: int  # available, minor units (may be down to minus one increment)
    held: int  # charged to calls still up, not yet in a CDR
    status: CardStatus
    batch: str = ""
    created_ms: int = 0
    sold_ms: int = 0
    activated_ms: int = 0
    expires_ms: int = 0  # 0: never
    valid_days: int = 0  # after first use; 0: no such limit
    cycle_day: int = 0
    allow: tuple[str, ...] = ()  # destination prefixes this card may call; empty: all
    warn_to: WarnTarget | None = None  # overrides the plan
    bundle_left: int = 0
    bundle_period: str = ""
    hold_reason: str = ""
    blocked_reason: str = ""

    def expired_at(self, now_ms: int) -> bool:
        return self.expires_ms > 0 and now_ms >= self.expires_ms

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> Card:
        h = str_dict(raw)
        warn = h.get("warn_to", "")
        return cls(
            id=h.get("id", ""),
            kind=h.get("kind", "card"),
            tenant=h.get("tenant", ""),
            plan=h.get("plan", ""),
            currency=h.get("currency", ""),
            balance=as_int(h.get("balance")),
            held=as_int(h.get("held")),
            status=CardStatus(h.get("status", "blocked")),
            batch=h.get("batch", ""),
            created_ms=as_int(h.get("created_ms")),
            sold_ms=as_int(h.get("sold_ms")),
            activated_ms=as_int(h.get("activated_ms")),
            expires_ms=as_int(h.get("expires_ms")),
            valid_days=as_int(h.get("valid_days")),
            cycle_day=as_int(h.get("cycle_day")),
            allow=tuple(p for p in h.get("allow", "").split(",") if p),
            warn_to=check_warn_target(warn) if warn else None,
            bundle_left=as_int(h.get("bundle_left")),
            bundle_period=h.get("bundle_period", ""),
            hold_reason=h.get("hold_reason", ""),
            blocked_reason=h.get("blocked_reason", ""),
        )


def card_fields(
    *,
    account: str,
    kind: str,
    tenant: str,
    plan: str,
    currency: str,
    balance: int,
    status: CardStatus,
    now_ms: int,
    batch: str = "",
    expires_ms: int = 0,
    valid_days: int = 0,
    allow: tuple[str, ...] = (),
    warn_to: WarnTarget | None = None,
    pin_hash: str = "",
) -> dict[str, str | int]:
    fields: dict[str, str | int] = {
        "id": account, "kind": kind, "tenant": tenant, "plan": plan, "currency": currency,
        "balance": balance, "status": status.value, "created_ms": now_ms,
    }
    # defaults (held 0, no expiry, no bundle used ...) are left out: Card.from_hash knows them
    optional: dict[str, str | int] = {
        "batch": batch, "expires_ms": expires_ms, "valid_days": valid_days,
        "allow": ",".join(allow), "warn_to": warn_to or "", "pin": pin_hash,
    }
    fields.update({k: v for k, v in optional.items() if v})
    return fields


@dataclass(frozen=True)
class CreditResult:
    applied: bool  # False: this reference was already credited
    balance: int


class CardService:
    def __init__(self, redis: RedisClient, clock: Clock, scripts: PrepaidScripts | None = None):
        self._r = redis
        self._clock = clock
        self._scripts = scripts or PrepaidScripts.register(redis)

    async def get(self, account: str, tenant: str | None = None) -> Card:
        """The account; CardNotFound also when it belongs to another tenant (invariant 4)."""
        keys.check_id("card", account)
        raw = await self._r.hgetall(keys.card(account))
        if not raw:
            raise CardNotFound(account)
        card = Card.from_hash(raw)
        if tenant is not None and card.tenant != tenant:
            raise CardNotFound(account)
        return card

    async def live_sessions(self, account: str) -> list[str]:
        return sorted(text(s) for s in await self._r.smembers(keys.card_live(account)))

    async def _set_status(
        self, account: str, allowed_from: tuple[CardStatus, ...], to: CardStatus,
        tenant: str | None, extra: Mapping[str, str | int] | None = None,
    ) -> Card:
        card = await self.get(account, tenant)
        if card.status not in allowed_from:
            raise CardStateError(
                f"card {account} is {card.status.value}; {to.value} needs "
                + " or ".join(s.value for s in allowed_from)
            )
        key = keys.card(account)
        async with self._r.pipeline(transaction=True) as pipe:
            mapping: dict[Any, Any] = {"status": to.value, **(extra or {})}
            pipe.hset(key, mapping=mapping)
            await pipe.execute()
        log.info("card_status_changed", card=account, tenant=card.tenant,
                 was=card.status.value, now=to.value)
        return await self.get(account)

    async def sell(self, account: str, tenant: str | None = None) -> Card:
        now = to_ms(self._clock.now())
        return await self._set_status(
            account, (CardStatus.CREATED,), CardStatus.SOLD, tenant, {"sold_ms": now}
        )

    async def block(self, account: str, reason: str = "", tenant: str | None = None) -> Card:
        return await self._set_status(
            account,
            (CardStatus.CREATED, CardStatus.SOLD, CardStatus.ACTIVE, CardStatus.HOLD),
            CardStatus.BLOCKED, tenant, {"blocked_reason": reason[:200]},
        )

    async def unblock(self, account: str, tenant: str | None = None) -> Card:
        card = await self.get(account, tenant)
        if card.kind == "tenant" or card.activated_ms:
            back = CardStatus.ACTIVE
        elif card.sold_ms:
            back = CardStatus.SOLD
        else:
            back = CardStatus.CREATED
        return await self._set_status(
            account, (CardStatus.BLOCKED,), back, tenant, {"blocked_reason": ""}
        )

    async def topup(
        self, account: str, amount: int, reference: str, currency: str | None = None,
        tenant: str | None = None,
    ) -> CreditResult:
        """Add money once per `reference` (a receipt number): a retried topup is a no-op."""
        card = await self.get(account, tenant)
        return await self.credit(account, amount, reference, currency or card.currency)

    async def credit(
        self, account: str, amount: int, reference: str, currency: str,
        release_hold: bool = False,
    ) -> CreditResult:
        if amount <= 0:
            raise BadInput(f"credit amount must be positive, not {amount}")
        if not reference or len(reference) > 200:
            raise BadInput("a credit needs a reference of 1-200 characters")
        res = await self._scripts.card_credit(
            keys=[keys.card(account), keys.credits(account)],
            args=[reference, amount, currency, to_ms(self._clock.now()), CREDITABLE,
                  "1" if release_hold else "0"],
        )
        status, detail = text(res[0]), res[1]
        if status == "missing":
            raise CardNotFound(account)
        if status == "currency":
            raise CurrencyMismatch(text(detail), currency)
        if status == "state":
            raise CardStateError(f"card {account} is {text(detail)}: it takes no credit")
        log.info("card_credited", card=account, amount=amount, reference=reference,
                 applied=status == "ok")
        return CreditResult(status == "ok", as_int(detail))

    async def list_by_tenant(
        self, tenant: str, cursor: int = 0, count: int = 100
    ) -> tuple[int, list[Card]]:
        """One page of a tenant's accounts; pass the returned cursor back until it is 0."""
        next_cursor, ids = await self._r.sscan(keys.tenant_cards(tenant), cursor, count=count)
        async with self._r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hgetall(keys.card(text(i)))
            rows = await pipe.execute()
        cards = [Card.from_hash(r) for r in rows if r]
        return int(next_cursor), sorted(
            (c for c in cards if c.tenant == tenant), key=lambda c: c.id
        )

    async def bind_booth(self, device: str, account: str, ttl_s: int = 4 * 3600) -> None:
        """Calls from this call-shop booth are charged to `account` until unbound or ttl."""
        keys.check_id("booth device", device)
        card = await self.get(account)
        if card.status not in (CardStatus.SOLD, CardStatus.ACTIVE):
            raise CardStateError(f"card {account} is {card.status.value}: cannot bind a booth")
        await self._r.set(keys.booth(device), account, ex=ttl_s)
        log.info("booth_bound", booth=device, card=account, ttl_s=ttl_s)

    async def booth_card(self, device: str) -> str | None:
        keys.check_id("booth device", device)
        v = await self._r.get(keys.booth(device))
        return text(v) or None

    async def unbind_booth(self, device: str) -> None:
        keys.check_id("booth device", device)
        await self._r.delete(keys.booth(device))
        log.info("booth_unbound", booth=device)

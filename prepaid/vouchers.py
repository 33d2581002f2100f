"""Vouchers: batches of single-use codes with a value, redeemed onto a card exactly once.

Redis keeps a voucher under the keyed hash of its code, so codes cannot be read back from
the database. Redemption is a claim on the voucher (voucher_claim.lua: one card wins, even
under concurrent redemption) and then a credit on the card keyed by the voucher
(card_credit.lua: idempotent). A crash between the two leaves the voucher claimed by that
card; redeeming it again on the same card finishes the job. A voucher of a tenant is only
redeemable on that tenant's cards (invariant 4).
"""

from __future__ import annotations

import csv
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO, cast

import structlog

from prepaid import keys
from prepaid.cards import CardService, CardStatus
from prepaid.clock import Clock, to_ms
from prepaid.errors import BadInput, CardNotFound, CardStateError
from prepaid.money import check_currency, format_amount
from prepaid.pins import PinHasher
from prepaid.replies import as_int, text
from prepaid.scripts import PrepaidScripts, RedisClient

log = structlog.get_logger(__name__)
_CHUNK = 1000


class RedeemStatus(StrEnum):
    OK = "ok"
    ALREADY_REDEEMED = "already_redeemed"  # by this card, earlier
    USED = "used"  # by another card
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    WRONG_TENANT = "wrong_tenant"
    WRONG_CURRENCY = "wrong_currency"
    CARD_REFUSED = "card_refused"  # card missing, blocked or expired


@dataclass(frozen=True)
class RedeemResult:
    status: RedeemStatus
    amount: int = 0
    balance: int = 0


@dataclass
class IssuedVouchers:
    batch_id: str
    value: int
    currency: str
    expires_at: float | None
    codes: list[str] = field(default_factory=list)

    def write_csv(self, out: TextIO) -> None:
        w = csv.writer(out)
        w.writerow(["code", "value", "currency", "expires", "batch"])
        expires = (
            datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%d")
            if self.expires_at else ""
        )
        value = format_amount(self.value, self.currency)
        for c in self.codes:
            w.writerow([c, value, self.currency, expires, self.batch_id])


_CLAIM_STATUS = {
    "used": RedeemStatus.USED,
    "unknown": RedeemStatus.UNKNOWN,
    "expired": RedeemStatus.EXPIRED,
    "tenant": RedeemStatus.WRONG_TENANT,
    "currency": RedeemStatus.WRONG_CURRENCY,
}


class VoucherService:
    def __init__(
        self,
        redis: RedisClient,
        hasher: PinHasher,
        clock: Clock,
        cards: CardService,
        scripts: PrepaidScripts | None = None,
    ) -> None:
        self._r = redis
        self._hasher = hasher
        self._clock = clock
        self._cards = cards
        self._scripts = scripts or PrepaidScripts.register(redis)

    async def create_batch(
        self,
        count: int,
        value: int,
        currency: str,
        tenant: str = "",
        expires_at: float | None = None,
        code_length: int = 14,
    ) -> IssuedVouchers:
        if not 1 <= count <= 1_000_000 or value <= 0:
            raise BadInput("a voucher batch holds 1 to 1,000,000 vouchers of a positive value")
        if not 10 <= code_length <= 24:
            raise BadInput("voucher codes are 10 to 24 digits")
        check_currency(currency)
        if tenant:
            keys.check_id("tenant", tenant)
        now = self._clock.now()
        batch_id = datetime.fromtimestamp(now, UTC).strftime("V%Y%m%d%H%M%S") + secrets.token_hex(3)
        issued = IssuedVouchers(batch_id, value, currency, expires_at)
        expires_ms = to_ms(expires_at) if expires_at else 0
        while len(issued.codes) < count:
            want = min(_CHUNK, count - len(issued.codes))
            codes = ["".join(str(secrets.randbelow(10)) for _ in range(code_length))
                     for _ in range(want)]
            async with self._r.pipeline(transaction=False) as pipe:
                for code in codes:
                    fields: dict[str, str | int] = {
                        "status": "new", "value": value, "currency": currency,
                        "tenant": tenant, "expires_ms": expires_ms, "batch": batch_id,
                    }
                    await self._scripts.card_create(  # create-if-absent of any hash
                        keys=[keys.voucher(self._hasher.voucher(code))],
                        args=[x for kv in fields.items() for x in kv],
                        client=cast(Any, pipe),
                    )
                fresh = await pipe.execute()
            kept = [c for c, ok in zip(codes, fresh, strict=True) if as_int(ok) == 1]
            issued.codes.extend(kept)
        await self._r.hset(keys.voucher_batch(batch_id), mapping={
            "id": batch_id, "count": count, "value": value, "currency": currency,
            "tenant": tenant, "expires_ms": expires_ms, "created_ms": to_ms(now),
        })
        log.info("voucher_batch_created", batch=batch_id, count=count, value=value,
                 currency=currency, tenant=tenant)
        return issued

    async def redeem(self, code: str, card_id: str, tenant: str | None = None) -> RedeemResult:
        code = (code or "").strip().replace(" ", "").replace("-", "")
        if not code.isdigit() or not 10 <= len(code) <= 24:
            return RedeemResult(RedeemStatus.UNKNOWN)
        try:
            card = await self._cards.get(card_id, tenant)
        except (CardNotFound, BadInput):
            return RedeemResult(RedeemStatus.CARD_REFUSED)
        if card.status in (CardStatus.BLOCKED, CardStatus.EXPIRED):
            return RedeemResult(RedeemStatus.CARD_REFUSED)
        vkey = keys.voucher(self._hasher.voucher(code))
        now_ms = to_ms(self._clock.now())
        res = await self._scripts.voucher_claim(
            keys=[vkey], args=["claim", card.id, card.tenant, card.currency, now_ms]
        )
        status, value = text(res[0]), as_int(res[1])
        if status in _CLAIM_STATUS:
            log.info("voucher_refused", card=card.id, tenant=card.tenant, why=status)
            return RedeemResult(_CLAIM_STATUS[status], value, card.balance)
        ref = f"voucher:{self._hasher.voucher(code)}"
        try:
            credit = await self._cards.credit(card.id, value, ref, card.currency)
        except (CardStateError, CardNotFound):
            await self._scripts.voucher_claim(
                keys=[vkey], args=["release", card.id, card.tenant, card.currency, now_ms]
            )
            return RedeemResult(RedeemStatus.CARD_REFUSED, value)
        await self._scripts.voucher_claim(
            keys=[vkey], args=["done", card.id, card.tenant, card.currency, now_ms]
        )
        if not credit.applied:
            return RedeemResult(RedeemStatus.ALREADY_REDEEMED, value, credit.balance)
        log.info("voucher_redeemed", card=card.id, tenant=card.tenant, amount=value,
                 balance=credit.balance)
        return RedeemResult(RedeemStatus.OK, value, credit.balance)

"""Card batches: numbers and PINs for printing, written to Redis in pipelines.

The PINs exist in clear only in the returned `IssuedBatch` (for the printer's CSV); Redis
holds their keyed hash. Card numbers are random digits with a Luhn check digit, so the IVR
can refuse a mistyped number without a look-up. 100,000 cards take a few seconds: cards are
written 1,000 per pipeline (create-if-absent in Lua, a rare number collision is redrawn),
and `progress(done, total)` is called after each pipeline for the CLI's progress bar.
"""

from __future__ import annotations

import csv
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO, cast

import structlog

from prepaid import keys
from prepaid.cards import CardStatus, card_fields
from prepaid.clock import Clock, to_ms
from prepaid.control import WarnTarget
from prepaid.errors import BadInput
from prepaid.money import check_currency, format_amount
from prepaid.pins import PinHasher
from prepaid.rating import check_prefix
from prepaid.replies import as_int
from prepaid.scripts import PrepaidScripts, RedisClient

log = structlog.get_logger(__name__)

Progress = Callable[[int, int], None]
_CHUNK = 1000


def luhn_digit(payload: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    return len(number) >= 2 and number.isdigit() and luhn_digit(number[:-1]) == number[-1]


def random_digits(n: int, first_nonzero: bool = False) -> str:
    if first_nonzero:
        return str(10 ** (n - 1) + secrets.randbelow(9 * 10 ** (n - 1)))
    return f"{secrets.randbelow(10**n):0{n}d}"


@dataclass(frozen=True)
class BatchSpec:
    count: int
    value: int  # minor units on each card
    currency: str
    plan: str
    tenant: str
    expires_at: float | None = None  # absolute expiry (epoch s)
    valid_days: int = 0  # expiry counted from first use; 0 = none
    number_length: int = 12  # digits including the Luhn digit
    number_prefix: str = ""  # e.g. the shop's own leading digits
    pin_length: int = 6
    allow: tuple[str, ...] = ()  # destination prefixes the cards may call
    warn_to: WarnTarget | None = None
    sold: bool = False  # cards ready to use straight away (no separate sale step)

    def check(self) -> None:
        if not 1 <= self.count <= 1_000_000:
            raise BadInput("a batch holds 1 to 1,000,000 cards")
        if self.value < 0:
            raise BadInput("card value must not be negative")
        check_currency(self.currency)
        keys.check_id("plan", self.plan)
        keys.check_id("tenant", self.tenant)
        if not 8 <= self.number_length <= 20:
            raise BadInput("card numbers are 8 to 20 digits")
        if self.number_prefix and (
            not self.number_prefix.isdigit() or len(self.number_prefix) > self.number_length - 7
        ):
            raise BadInput("number prefix must be digits leaving at least 7 random digits")
        if not 4 <= self.pin_length <= 20:
            raise BadInput("PINs are 4 to 20 digits")
        for p in self.allow:
            check_prefix(p)


@dataclass(frozen=True)
class IssuedCard:
    number: str
    pin: str


@dataclass
class IssuedBatch:
    batch_id: str
    spec: BatchSpec
    cards: list[IssuedCard] = field(default_factory=list)

    def write_csv(self, out: TextIO) -> None:
        """The printer's file: one card per row; the only place PINs appear in clear."""
        s = self.spec
        expires = (
            datetime.fromtimestamp(s.expires_at, UTC).strftime("%Y-%m-%d")
            if s.expires_at else ""
        )
        w = csv.writer(out)
        w.writerow(["card", "pin", "value", "currency", "plan", "expires", "batch"])
        value = format_amount(s.value, s.currency)
        for c in self.cards:
            w.writerow([c.number, c.pin, value, s.currency, s.plan, expires, self.batch_id])


class BatchService:
    def __init__(
        self,
        redis: RedisClient,
        hasher: PinHasher,
        clock: Clock,
        scripts: PrepaidScripts | None = None,
    ) -> None:
        self._r = redis
        self._hasher = hasher
        self._clock = clock
        self._scripts = scripts or PrepaidScripts.register(redis)

    def _number(self, spec: BatchSpec) -> str:
        body = spec.number_length - 1 - len(spec.number_prefix)
        payload = spec.number_prefix + random_digits(body, first_nonzero=not spec.number_prefix)
        return payload + luhn_digit(payload)

    async def create(self, spec: BatchSpec, progress: Progress | None = None) -> IssuedBatch:
        spec.check()
        now = self._clock.now()
        now_ms = to_ms(now)
        batch_id = datetime.fromtimestamp(now, UTC).strftime("B%Y%m%d%H%M%S") + secrets.token_hex(3)
        await self._r.hset(keys.batch(batch_id), mapping={
            "id": batch_id, "count": spec.count, "value": spec.value, "currency": spec.currency,
            "plan": spec.plan, "tenant": spec.tenant, "created_ms": now_ms,
            "expires_ms": to_ms(spec.expires_at) if spec.expires_at else 0,
            "valid_days": spec.valid_days, "status": "creating",
        })
        issued = IssuedBatch(batch_id, spec)
        status = CardStatus.SOLD if spec.sold else CardStatus.CREATED
        done = 0
        while done < spec.count:
            want = min(_CHUNK, spec.count - done)
            drafts = [IssuedCard(self._number(spec), random_digits(spec.pin_length))
                      for _ in range(want)]
            created = await self._write(drafts, spec, batch_id, status, now_ms)
            issued.cards.extend(created)
            done += len(created)
            if progress:
                progress(done, spec.count)
        await self._r.hset(keys.batch(batch_id), "status", "created")
        log.info("card_batch_created", batch=batch_id, tenant=spec.tenant, count=spec.count,
                 value=spec.value, currency=spec.currency, plan=spec.plan)
        return issued

    async def _write(
        self, drafts: Sequence[IssuedCard], spec: BatchSpec, batch_id: str,
        status: CardStatus, now_ms: int,
    ) -> list[IssuedCard]:
        expires_ms = to_ms(spec.expires_at) if spec.expires_at else 0
        async with self._r.pipeline(transaction=False) as pipe:
            for d in drafts:
                fields = card_fields(
                    account=d.number, kind="card", tenant=spec.tenant, plan=spec.plan,
                    currency=spec.currency, balance=spec.value, status=status, now_ms=now_ms,
                    batch=batch_id, expires_ms=expires_ms, valid_days=spec.valid_days,
                    allow=spec.allow, warn_to=spec.warn_to,
                    pin_hash=self._hasher.pin(d.number, d.pin),
                )
                if status is CardStatus.SOLD:
                    fields["sold_ms"] = now_ms
                args = [x for kv in fields.items() for x in kv]
                await self._scripts.card_create(keys=[keys.card(d.number)], args=args,
                                                client=cast(Any, pipe))
            results = await pipe.execute()
        created = [d for d, ok in zip(drafts, results, strict=True) if as_int(ok) == 1]
        if created:
            await self._r.sadd(keys.tenant_cards(spec.tenant), *(c.number for c in created))
        return created

"""What the prepaid CLI groups (card, voucher, rate, cdr) share: the services over the
operator's Redis, with the site's PIN secret, and the time formats operators type."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from gateway.config import Config
from gateway.redis_connect import RedisClient
from prepaid.batches import BatchService
from prepaid.cards import CardService
from prepaid.cdr import CdrStore
from prepaid.clock import SystemClock
from prepaid.errors import BadInput
from prepaid.pins import PinGuard, PinHasher
from prepaid.rateplan_store import RatePlanStore
from prepaid.scripts import PrepaidScripts
from prepaid.vouchers import VoucherService


@dataclass
class PrepaidCli:
    cards: CardService
    plans: RatePlanStore
    cdrs: CdrStore
    hasher: PinHasher | None

    def _need_hasher(self) -> PinHasher:
        if self.hasher is None:
            raise BadInput("set [prepaid] pin_secret in the config (the daemon's value): "
                           "PINs and voucher codes are stored as its keyed hash")
        return self.hasher

    def batches(self, redis: RedisClient) -> BatchService:
        return BatchService(redis, self._need_hasher(), SystemClock())

    def vouchers(self, redis: RedisClient) -> VoucherService:
        return VoucherService(redis, self._need_hasher(), SystemClock(), self.cards)

    def pins(self, redis: RedisClient) -> PinGuard:
        return PinGuard(redis, self._need_hasher(), SystemClock())


def prepaid_cli(cfg: Config, redis: RedisClient) -> PrepaidCli:
    clock = SystemClock()
    scripts = PrepaidScripts.register(redis)
    secret = cfg.prepaid.pin_secret
    return PrepaidCli(
        CardService(redis, clock, scripts), RatePlanStore(redis, clock),
        CdrStore(redis, scripts), PinHasher(secret.encode()) if secret else None,
    )


def parse_when(text: str, *, now: float | None = None) -> float:
    """Epoch seconds from `2027-01-31`, `2027-01-31T08:00` (UTC unless an offset is
    given), an epoch number, or a span from now: `180d`, `12h`, `-7d`."""
    now = time.time() if now is None else now
    t = text.strip()
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    if len(t) >= 2 and t[-1] in units and t[:-1].lstrip("-").isdigit():
        return now + int(t[:-1]) * units[t[-1]]
    try:
        return float(t)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise BadInput(f"{text!r} is not a date (2027-01-31[T08:00]), an epoch or a span "
                       "like 180d") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def iso(ts_ms: int) -> str:
    if not ts_ms:
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@contextmanager
def open_output(path: str | None) -> Iterator[TextIO]:
    """`--out FILE`, else stdout; opened before the event loop runs (no blocking open in it)."""
    if not path:
        yield sys.stdout
        return
    with Path(path).open("w", newline="", encoding="utf-8") as out:
        yield out

"""PIN checks with brute-force protection.

PINs are stored as HMAC-SHA256(site secret, "card:pin"): a copy of the database does not
reveal them and identical PINs on two cards do not look alike. Failures are counted per
card and per caller id (anonymous callers share one counter); too many in the window lock
the card, or the caller, out for a while. A correct PIN is checked before the card's state
is revealed, so the IVR cannot be used to probe which card numbers are blocked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum

import structlog

from prepaid import keys
from prepaid.cards import CardStatus
from prepaid.clock import Clock, to_ms
from prepaid.control import EV_CARD_LOCKED, EventSink, NoEvents
from prepaid.errors import BadInput
from prepaid.replies import as_int, text
from prepaid.scripts import PrepaidScripts, RedisClient

log = structlog.get_logger(__name__)

_PIN_RE = re.compile(r"^[0-9]{4,20}$")
_CALLER_RE = re.compile(r"^[A-Za-z0-9_.:@+*#-]{1,64}$")


class PinHasher:
    """Keyed hash of PINs and voucher codes with the site secret (never stored in Redis)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise BadInput("the PIN secret must be at least 16 bytes")
        self._secret = secret

    def pin(self, card: str, pin: str) -> str:
        return hmac.new(self._secret, f"{card}:{pin}".encode(), hashlib.sha256).hexdigest()

    def matches(self, card: str, pin: str, stored: str) -> bool:
        return hmac.compare_digest(self.pin(card, pin), stored)

    def voucher(self, code: str) -> str:
        return hmac.new(self._secret, f"voucher:{code}".encode(), hashlib.sha256).hexdigest()[:32]


class PinResult(StrEnum):
    OK = "ok"
    BAD_PIN = "bad_pin"
    CARD_LOCKED = "card_locked"
    CARD_BLOCKED = "card_blocked"
    CALLER_LOCKED = "caller_locked"

    @property
    def reason(self) -> str:
        """The CALLGATE_REASON word for the IVR."""
        return {
            PinResult.OK: "ok",
            PinResult.BAD_PIN: "bad_pin",
            PinResult.CARD_LOCKED: "card_blocked",
            PinResult.CARD_BLOCKED: "card_blocked",
            PinResult.CALLER_LOCKED: "bad_pin",
        }[self]


@dataclass(frozen=True)
class PinPolicy:
    card_failures: int = 5  # wrong PINs on one card ...
    card_window_s: int = 3600  # ... within this window ...
    card_lock_s: int = 1800  # ... lock the card this long
    caller_failures: int = 10
    caller_window_s: int = 3600
    caller_lock_s: int = 3600


def caller_key(caller: str) -> str:
    c = (caller or "").strip()
    if c and _CALLER_RE.match(c) and c.lower() not in ("anonymous", "unknown"):
        return c
    return "anonymous"


class PinGuard:
    def __init__(
        self,
        redis: RedisClient,
        hasher: PinHasher,
        clock: Clock,
        events: EventSink | None = None,
        policy: PinPolicy | None = None,
        scripts: PrepaidScripts | None = None,
    ) -> None:
        self._r = redis
        self._hasher = hasher
        self._clock = clock
        self._events = events or NoEvents()
        self.policy = policy or PinPolicy()
        self._scripts = scripts or PrepaidScripts.register(redis)

    async def verify_pin(self, card: str, pin: str, caller: str = "") -> PinResult:
        """Called by the IVR for each PIN entered; OK means the card may go on to authorize."""
        who = caller_key(caller)
        try:
            keys.check_id("card", card)
        except BadInput:
            card = ""
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.exists(keys.caller_pinlock(who))
            if card:
                pipe.exists(keys.card_pinlock(card))
                pipe.hmget(keys.card(card), ["status", "pin", "expires_ms", "tenant"])
            res = await pipe.execute()
        if res[0]:
            log.info("pin_refused_caller_locked", caller=who, card=card)
            return PinResult.CALLER_LOCKED
        if card and res[1]:
            log.info("pin_refused_card_locked", card=card, caller=who)
            return PinResult.CARD_LOCKED
        status, stored, expires, tenant = (text(v) for v in res[2]) if card else ("",) * 4
        good = bool(
            stored and isinstance(pin, str) and _PIN_RE.match(pin)
            and self._hasher.matches(card, pin, stored)
        )
        if not good:
            return await self._failed(card if status else "", tenant, who)
        await self._r.delete(keys.card_pinfails(card))
        now_ms = to_ms(self._clock.now())
        if status not in (CardStatus.SOLD, CardStatus.ACTIVE) or (
            as_int(expires) and now_ms >= as_int(expires)
        ):
            log.info("pin_ok_card_blocked", card=card, status=status, caller=who)
            return PinResult.CARD_BLOCKED
        log.info("pin_ok", card=card, caller=who)
        return PinResult.OK

    async def _failed(self, card: str, tenant: str, who: str) -> PinResult:
        p = self.policy
        caller_res = await self._scripts.fail_counter(
            keys=[keys.caller_pinfails(who), keys.caller_pinlock(who)],
            args=[p.caller_window_s * 1000, p.caller_failures, p.caller_lock_s * 1000],
        )
        card_locked = False
        if card:
            card_res = await self._scripts.fail_counter(
                keys=[keys.card_pinfails(card), keys.card_pinlock(card)],
                args=[p.card_window_s * 1000, p.card_failures, p.card_lock_s * 1000],
            )
            card_locked = bool(as_int(card_res[1]))
        log.info("pin_failed", card=card, caller=who, caller_failures=as_int(caller_res[0]))
        if card_locked:
            log.warning("card_locked", card=card, caller=who, lock_s=p.card_lock_s)
            await self._events.publish(
                EV_CARD_LOCKED,
                {"card": card, "tenant": tenant, "caller": who, "lock_s": p.card_lock_s},
            )
            return PinResult.CARD_LOCKED
        if as_int(caller_res[1]):
            log.warning("caller_locked", caller=who, lock_s=p.caller_lock_s)
            return PinResult.CALLER_LOCKED
        return PinResult.BAD_PIN

    async def unlock(self, card: str) -> None:
        """Operator action: lift a card's lock-out and forget its failures."""
        await self._r.delete(keys.card_pinlock(card), keys.card_pinfails(card))
        log.info("card_unlocked", card=card)

    async def set_pin(self, card: str, pin: str) -> None:
        if not _PIN_RE.match(pin):
            raise BadInput("a PIN is 4-20 digits")
        keys.check_id("card", card)
        await self._r.hset(keys.card(card), "pin", self._hasher.pin(card, pin))

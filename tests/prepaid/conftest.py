"""Fixtures for prepaid/: its services over the real test Redis, a clock tests move by hand,
and recording stand-ins for the gateway's CallControl and EventSink."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis

from prepaid.batches import BatchService, BatchSpec
from prepaid.cards import CardService
from prepaid.cdr import Cdr, CdrStore
from prepaid.clock import Clock, ManualClock
from prepaid.control import WarnTarget
from prepaid.pins import PinGuard, PinHasher
from prepaid.rateplan_csv import parse_text
from prepaid.rateplan_store import RatePlanCache, RatePlanStore
from prepaid.rating import PlanSettings
from prepaid.scheduler import DebitScheduler
from prepaid.scripts import PrepaidScripts
from prepaid.sessions import AuthorizeRequest, SessionService
from prepaid.vouchers import VoucherService

SECRET = b"test-site-secret-0123456789"
EMERGENCY = frozenset({"112", "911", "999"})
T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC, a Friday


@dataclass
class RecordingControl:
    """CallControl stand-in: what the gateway would have sent to Asterisk, and when."""

    clock: Clock
    cut: list[tuple[str, float]] = field(default_factory=list)
    warned: list[tuple[str, WarnTarget, float]] = field(default_factory=list)

    async def cut_off(self, call_id: str) -> bool | None:
        self.cut.append((call_id, self.clock.now()))
        return None  # as if Asterisk did not say

    async def play_warning(self, call_id: str, to: WarnTarget) -> None:
        self.warned.append((call_id, to, self.clock.now()))


@dataclass
class RecordingEvents:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def publish(self, kind: str, payload: Mapping[str, Any]) -> None:
        self.events.append((kind, dict(payload)))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]


@dataclass
class Prepaid:
    redis: aioredis.Redis
    clock: ManualClock
    scripts: PrepaidScripts
    hasher: PinHasher
    cards: CardService
    batches: BatchService
    pins: PinGuard
    vouchers: VoucherService
    plans: RatePlanStore
    sessions: SessionService
    cdrs: CdrStore
    control: RecordingControl
    events: RecordingEvents

    async def plan(self, name: str, csv_text: str, settings: PlanSettings) -> None:
        parsed = parse_text(csv_text, settings)
        assert not parsed.errors, parsed.errors
        await self.plans.save(name, settings, parsed.entries)

    async def card(self, value: int, plan: str = "std", currency: str = "EUR",
                   tenant: str = "shop1", **kw: Any) -> tuple[str, str]:
        spec = BatchSpec(count=1, value=value, currency=currency, plan=plan, tenant=tenant,
                         sold=True, **kw)
        issued = await self.batches.create(spec)
        return issued.cards[0].number, issued.cards[0].pin

    def scheduler(self, **kw: Any) -> DebitScheduler:
        return DebitScheduler(self.sessions, self.control, self.clock, events=self.events, **kw)

    async def call(self, card: str, dest: str, call_id: str = "c1", caller: str = "100") -> str:
        auth = await self.sessions.authorize(AuthorizeRequest(card, dest, call_id, caller))
        assert auth.allowed, auth
        return auth.session_id

    async def all_cdrs(self) -> list[Cdr]:
        await self.sessions.flush_relays()  # the ticker would on its next run
        return [c async for c in self.cdrs.iter_range(0, 4e9)]


def make_prepaid(redis: aioredis.Redis, clock: ManualClock, gateway: str = "gw1") -> Prepaid:
    scripts = PrepaidScripts.register(redis)
    hasher = PinHasher(SECRET)
    events = RecordingEvents()
    control = RecordingControl(clock)
    cards = CardService(redis, clock, scripts)
    store = RatePlanStore(redis, clock)
    sessions = SessionService(
        redis, RatePlanCache(store, clock, check_every=0), clock, gateway=gateway,
        is_emergency=lambda d: d in EMERGENCY, events=events, scripts=scripts,
    )
    return Prepaid(
        redis, clock, scripts, hasher, cards, BatchService(redis, hasher, clock, scripts),
        PinGuard(redis, hasher, clock, events, scripts=scripts),
        VoucherService(redis, hasher, clock, cards, scripts), store, sessions,
        CdrStore(redis, scripts), control, events,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def pp(redis_client: aioredis.Redis, clock: ManualClock) -> Prepaid:
    return make_prepaid(redis_client, clock)


# 1 minor unit per second: easy arithmetic
FLAT_CSV = """prefix,destination,rate,connection_fee,increments,min_duration,grace
44,UK,0.60,0,1/1,0,0
4420,London,0.60,0,1/1,0,0
33,France,0.60,0,30/6,0,0
1,USA,0.60,0,60/60,0,0
"""

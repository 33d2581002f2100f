"""What the wallboard needs from the daemon, passed in by the wiring (no globals).

The campaign and prepaid sections read from provider callables (plain or async) that
may be None: the section is then hidden. A provider returns every item of the site;
the wallboard keeps those of the tenants the viewer's token may see.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.api.tokens import RedisClient, TokenStore
from gateway.wallboard.tally import DecisionTally
from limits import LimitsService


class CampaignFigures(Protocol):
    """A campaign's live figures; `dialer.stats.CampaignStats` is one."""

    @property
    def tenant(self) -> str: ...
    @property
    def campaign_id(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def paused(self) -> bool: ...
    @property
    def abandon_rate(self) -> float: ...
    @property
    def abandon_target(self) -> float: ...
    @property
    def occupancy(self) -> float: ...
    @property
    def calls_ringing(self) -> int: ...
    @property
    def calls_waiting(self) -> int: ...
    @property
    def calls_connected(self) -> int: ...
    @property
    def agents_ready(self) -> int: ...
    @property
    def agents_ringing(self) -> int: ...
    @property
    def agents_talking(self) -> int: ...
    @property
    def agents_wrap_up(self) -> int: ...


class CardFigures(Protocol):
    """A prepaid account; `prepaid.cards.Card` is one. Money in minor units."""

    @property
    def id(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def balance(self) -> int: ...
    @property
    def held(self) -> int: ...


CampaignsProvider = Callable[
    [], Iterable[CampaignFigures] | Awaitable[Iterable[CampaignFigures]]
]
# The cards to show as near zero, by the provider's own rule (it knows the rates).
LowCardsProvider = Callable[[], Iterable[CardFigures] | Awaitable[Iterable[CardFigures]]]


@dataclass(frozen=True)
class WallboardDeps:
    redis: RedisClient  # the API tokens live here
    site: str
    limits: LimitsService | None = None
    decisions: DecisionTally | None = None
    campaigns: CampaignsProvider | None = None
    low_cards: LowCardsProvider | None = None
    interval: float = 1.0  # seconds between two snapshots of the live feed
    max_rows: int = 60  # rows per section; the busiest first, the rest counted
    chart_minutes: int = 30
    clock: Callable[[], float] = time.time
    log: Any = None  # a structlog logger; default: this package's

    def tokens(self) -> TokenStore:
        return TokenStore(self.redis, self.site, clock=self.clock, log=self.log)

"""The site's figures as the wallboard shows them, read at most once per interval.

However many wallboards are open, the counters are read from Redis (and the providers
asked) once per interval; each board then keeps what its token may see (gateway.wallboard
.view). A part that cannot be read is reported by name instead of failing the rest.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from redis.exceptions import RedisError

from gateway.wallboard.deps import CampaignFigures, CardFigures, WallboardDeps
from limits import BackendUnavailable, ScopeKind, ScopeStatus

COUNTERS = {
    ScopeKind.TENANT_TOTAL: "total",
    ScopeKind.TENANT_OUTBOUND: "outbound",
    ScopeKind.TENANT_INBOUND: "inbound",
}
T = TypeVar("T")


@dataclass
class SiteSample:
    taken_at: float
    tenants: dict[str, dict[str, ScopeStatus]]  # tenant -> counter name -> status
    trunks: list[ScopeStatus]
    campaigns: list[CampaignFigures] | None  # None: no provider
    low_cards: list[CardFigures] | None
    errors: dict[str, str] = field(default_factory=dict)  # part -> what went wrong
    parents: dict[str, str | None] = field(default_factory=dict)  # filled on demand


class SiteSampler:
    def __init__(self, deps: WallboardDeps) -> None:
        self._deps = deps
        self._log = deps.log if deps.log is not None else structlog.get_logger(__name__)
        self._lock = asyncio.Lock()
        self._last: SiteSample | None = None
        self._last_read = float("-inf")

    async def sample(self) -> SiteSample:
        """The current sample; read again when the last one is older than 90 % of the
        interval (so a board ticking every interval always gets a fresh one)."""
        async with self._lock:
            now = asyncio.get_running_loop().time()
            if self._last is None or now - self._last_read >= 0.9 * self._deps.interval:
                self._last = await self._read()
                self._last_read = now
            return self._last

    async def parent_of(self, sample: SiteSample, tenant: str) -> str | None:
        """A tenant's reseller, remembered for the life of `sample` (one interval)."""
        if tenant not in sample.parents:
            assert self._deps.limits is not None
            sample.parents[tenant] = (await self._deps.limits.settings.show_tenant(tenant)
                                      ).reseller
        return sample.parents[tenant]

    async def _read(self) -> SiteSample:
        errors: dict[str, str] = {}
        tenants: dict[str, dict[str, ScopeStatus]] = {}
        trunks: list[ScopeStatus] = []
        limits = self._deps.limits
        if limits is not None:
            try:
                for kind, counter in COUNTERS.items():
                    for status in await limits.settings.list_scopes(kind):
                        tenants.setdefault(status.tenant, {})[counter] = status
                trunks = await limits.settings.list_scopes(ScopeKind.TRUNK)
            except (BackendUnavailable, RedisError, OSError) as exc:
                self._log.warning("wallboard_limits_unreadable", error=str(exc))
                errors["limits"] = "the gateway's database (Redis) did not answer"
                tenants, trunks = {}, []
        campaigns = await self._provided("campaigns", self._deps.campaigns, errors)
        low_cards = await self._provided("low_cards", self._deps.low_cards, errors)
        return SiteSample(self._deps.clock(), tenants, trunks, campaigns, low_cards, errors)

    async def _provided(
        self, part: str, provider: Callable[[], Iterable[T] | Awaitable[Iterable[T]]] | None,
        errors: dict[str, str],
    ) -> list[T] | None:
        if provider is None:
            return None
        try:
            got: Any = provider()
            items: Iterable[T] = await got if inspect.isawaitable(got) else got
            return list(items)
        except Exception as exc:
            self._log.warning("wallboard_provider_failed", part=part, error=str(exc))
            errors[part] = f"could not be read: {type(exc).__name__}"
            return []

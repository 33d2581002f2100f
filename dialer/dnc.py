"""Do-not-call lists: one per tenant, one global (e.g. a national registry import).

Numbers are stored in E.164, normalised the same way leads are, so "+1 (212) 555-0100"
on the list blocks a lead imported as "212-555-0100".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import phonenumbers
import structlog

from dialer.keys import GLOBAL_DNC, tenant_dnc
from dialer.redis_types import RedisClient

log = structlog.get_logger(__name__)


def to_e164(raw: str, region: str) -> str | None:
    """E.164 form of a dialable number, or None if it is not a valid number."""
    try:
        n = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(n):
        return None
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)


class DncStore:
    def __init__(self, redis: RedisClient) -> None:
        self._r = redis

    async def add(self, tenant: str | None, numbers: Iterable[str],
                  region: str = "US") -> list[str]:
        """Add numbers to a tenant's list (tenant=None: the global list).

        Returns the entries that are not valid numbers (not added).
        """
        key = GLOBAL_DNC if tenant is None else tenant_dnc(tenant)
        good, bad = self._normalise(numbers, region)
        if good:
            await self._r.sadd(key, *good)
        log.info("dnc_added", tenant=tenant or "global", added=len(good), rejected=len(bad))
        return bad

    async def remove(self, tenant: str | None, numbers: Iterable[str],
                     region: str = "US") -> None:
        key = GLOBAL_DNC if tenant is None else tenant_dnc(tenant)
        good, _ = self._normalise(numbers, region)
        if good:
            await self._r.srem(key, *good)
        log.info("dnc_removed", tenant=tenant or "global", removed=len(good))

    async def blocked(self, tenant: str, numbers: Sequence[str]) -> set[str]:
        """Which of these E.164 numbers are on the tenant's or the global list."""
        if not numbers:
            return set()
        pipe = self._r.pipeline(transaction=False)
        pipe.smismember(tenant_dnc(tenant), list(numbers))
        pipe.smismember(GLOBAL_DNC, list(numbers))
        mine, everyone = await pipe.execute()
        return {n for n, a, b in zip(numbers, mine, everyone, strict=True) if int(a) or int(b)}

    @staticmethod
    def _normalise(numbers: Iterable[str], region: str) -> tuple[list[str], list[str]]:
        good: list[str] = []
        bad: list[str] = []
        for raw in numbers:
            e164 = to_e164(raw, region)
            (good if e164 else bad).append(e164 or raw)
        return good, bad

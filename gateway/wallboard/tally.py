"""Per-minute counts of this gateway's call decisions, by tenant, for the wallboard chart.

Fed as an EventSink (next to the MQTT publisher, behind `gateway.call_events.CallEvents`):
the decision events of CallControl carry the result, the reason and the tenant, which
the Prometheus counters do not (they have no tenant label, and a tenant's wallboard may
show only its own decisions). Kept in memory for the last hour: this is one gateway's
share of the site's traffic and starts empty after a restart.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from gateway.call_events import DECISION_KINDS

OTHER_TENANTS = "*other*"  # counted in site-wide totals once a minute saw too many tenants


@dataclass(frozen=True, slots=True)
class MinuteCounts:
    minute: int  # epoch seconds at the start of the minute
    allowed: int
    denied: int
    denied_by_reason: dict[str, int] = field(default_factory=dict)


class _Minute:
    __slots__ = ("minute", "tenants")

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.tenants: dict[str, dict[tuple[str, str], int]] = {}


class DecisionTally:
    def __init__(self, *, minutes: int = 60, max_tenants_per_minute: int = 5000,
                 clock: Callable[[], float] = time.time) -> None:
        if minutes < 1:
            raise ValueError("minutes must be >= 1")
        self._keep = minutes
        self._max_tenants = max_tenants_per_minute
        self._clock = clock
        self._ring: deque[_Minute] = deque()

    # -- EventSink ----------------------------------------------------------------------

    def publish(self, kind: str, payload: dict[str, Any], tenant: str | None = None) -> None:
        """Counts decision events; every other kind passes by."""
        if kind not in DECISION_KINDS:
            return
        result = payload.get("result")
        if result not in ("ALLOW", "DENY"):
            return
        self.record(tenant or "", str(result), str(payload.get("reason") or ""))

    def record(self, tenant: str, result: str, reason: str = "") -> None:
        bucket = self._current()
        counts = bucket.tenants.get(tenant)
        if counts is None:
            if len(bucket.tenants) >= self._max_tenants:
                tenant = OTHER_TENANTS
            counts = bucket.tenants.setdefault(tenant, {})
        key = (result, reason)
        counts[key] = counts.get(key, 0) + 1

    # -- reading ------------------------------------------------------------------------

    def tenants_seen(self) -> set[str]:
        return {t for bucket in self._ring for t in bucket.tenants}

    def per_minute(self, last: int = 30, *,
                   tenants: Collection[str] | None = None) -> list[MinuteCounts]:
        """The last `last` minutes, oldest first, the current minute included; with
        `tenants`, only those tenants' decisions (None: every decision of the gateway)."""
        now_minute = self._minute_of(self._clock())
        by_minute = {b.minute: b for b in self._ring}
        out = []
        for i in range(last - 1, -1, -1):
            minute = now_minute - 60 * i
            bucket = by_minute.get(minute)
            allowed = denied = 0
            reasons: dict[str, int] = {}
            if bucket is not None:
                for tenant, counts in bucket.tenants.items():
                    if tenants is not None and tenant not in tenants:
                        continue
                    for (result, reason), n in counts.items():
                        if result == "ALLOW":
                            allowed += n
                        else:
                            denied += n
                            reasons[reason] = reasons.get(reason, 0) + n
            out.append(MinuteCounts(minute, allowed, denied, reasons))
        return out

    # -- ring ---------------------------------------------------------------------------

    @staticmethod
    def _minute_of(at: float) -> int:
        return int(at // 60) * 60

    def _current(self) -> _Minute:
        minute = self._minute_of(self._clock())
        if self._ring and self._ring[-1].minute >= minute:
            # Same minute, or the wall clock stepped back: count in the newest minute.
            return self._ring[-1]
        bucket = _Minute(minute)
        self._ring.append(bucket)
        oldest = minute - 60 * (self._keep - 1)
        while self._ring and self._ring[0].minute < oldest:
            self._ring.popleft()
        return bucket

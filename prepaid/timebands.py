"""Peak / off-peak time bands of a rate plan, in the plan's timezone.

A rule names a band, the local weekdays it applies to and a local time range. The band of
an instant is that of the first rule matching its local weekday and time of day, else the
plan's default band. Days are those of the instant being rated: `mon-fri 19:00-08:00`
covers [19:00, 24:00) and [00:00, 08:00) of Monday to Friday (so Saturday 07:00 is not in
it). Local time follows the zone's DST rules (zoneinfo); band edges are wall-clock times.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prepaid.errors import BadInput

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
_BAND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadInput(f"timezone {name!r} is not an IANA zone such as Europe/Paris") from None


def check_band_name(name: str) -> str:
    if not _BAND_RE.match(name):
        raise BadInput(f"band name {name!r} must be lowercase letters, digits and _")
    return name


def parse_days(text: str) -> frozenset[int]:
    """'mon-fri', 'sat,sun', 'mon,wed-fri', '*' -> weekday numbers (Monday = 0)."""
    spec = text.strip().lower()
    if spec in ("*", "all", "daily"):
        return frozenset(range(7))
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        lo, _, hi = part.partition("-")
        if lo not in _DAYS or (hi and hi not in _DAYS):
            raise BadInput(f"days {text!r}: {part!r} is not a day or range like mon-fri")
        a, b = _DAYS.index(lo), _DAYS.index(hi or lo)
        out.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(out)


def parse_minute(text: str) -> int:
    m = _TIME_RE.match(text.strip())
    if not m or int(m.group(2)) > 59 or int(m.group(1)) * 60 + int(m.group(2)) > 1440:
        raise BadInput(f"time {text!r} must be HH:MM between 00:00 and 24:00")
    return int(m.group(1)) * 60 + int(m.group(2))


@dataclass(frozen=True, slots=True)
class BandRule:
    """Local [start, end) minutes of the day on `days`; end < start wraps past midnight."""

    band: str
    days: frozenset[int]
    start_min: int
    end_min: int

    def __post_init__(self) -> None:
        check_band_name(self.band)
        if not self.days:
            raise BadInput(f"band {self.band!r} rule has no days")
        if not (0 <= self.start_min <= 1440 and 0 <= self.end_min <= 1440):
            raise BadInput(f"band {self.band!r} rule times must be within the day")
        if self.start_min == self.end_min:
            raise BadInput(f"band {self.band!r} rule is empty (start == end)")

    @classmethod
    def parse(cls, band: str, days: str, hours: str) -> BandRule:
        start, sep, end = hours.partition("-")
        if not sep:
            raise BadInput(f"hours {hours!r} must be HH:MM-HH:MM")
        return cls(band, parse_days(days), parse_minute(start), parse_minute(end))

    def matches(self, weekday: int, second_of_day: int) -> bool:
        if weekday not in self.days:
            return False
        s, e = self.start_min * 60, self.end_min * 60
        if s < e:
            return s <= second_of_day < e
        return second_of_day >= s or second_of_day < e

    def to_json(self) -> list[Any]:
        return [self.band, sorted(self.days), self.start_min, self.end_min]

    @classmethod
    def from_json(cls, raw: Sequence[Any]) -> BandRule:
        band, days, start, end = raw
        return cls(str(band), frozenset(int(d) for d in days), int(start), int(end))


@dataclass(frozen=True, slots=True)
class Segment:
    band: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class TimeBands:
    timezone: str = "UTC"
    rules: tuple[BandRule, ...] = ()
    default: str = "peak"
    _marks: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        zone(self.timezone)
        check_band_name(self.default)
        marks = {0}
        for r in self.rules:
            marks.update((r.start_min * 60 % 86400, r.end_min * 60 % 86400))
        object.__setattr__(self, "_marks", tuple(sorted(marks)))

    @property
    def names(self) -> frozenset[str]:
        return frozenset({self.default, *(r.band for r in self.rules)})

    def band_at(self, ts: float) -> str:
        local = datetime.fromtimestamp(ts, zone(self.timezone))
        sod = local.hour * 3600 + local.minute * 60 + local.second
        for r in self.rules:
            if r.matches(local.weekday(), sod):
                return r.band
        return self.default

    def _next_edge_ms(self, ms: int) -> int:
        """The first wall-clock instant after `ms` at which the band may change."""
        tz = zone(self.timezone)
        local = datetime.fromtimestamp(ms / 1000, tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        sod = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        for mark in self._marks:
            if mark > sod:
                edge = midnight + timedelta(seconds=mark)
                break
        else:
            edge = (midnight + timedelta(days=1)).replace(hour=0)
        edge_ms = int(edge.timestamp() * 1000)
        return edge_ms if edge_ms > ms else ms + 60_000  # a DST gap: step on a minute

    def segments(self, start_ms: int, end_ms: int) -> Iterator[Segment]:
        """Maximal runs of one band covering [start_ms, end_ms)."""
        if not self.rules:
            if end_ms > start_ms:
                yield Segment(self.default, start_ms, end_ms)
            return
        t = start_ms
        band = self.band_at(t / 1000)
        seg_start = t
        while t < end_ms:
            edge = min(self._next_edge_ms(t), end_ms)
            nxt = self.band_at(edge / 1000) if edge < end_ms else None
            if nxt != band:
                yield Segment(band, seg_start, edge)
                if nxt is not None:
                    band, seg_start = nxt, edge
            t = edge

    def to_json(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "default": self.default,
            "rules": [r.to_json() for r in self.rules],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TimeBands:
        return cls(
            timezone=str(raw.get("timezone", "UTC")),
            default=str(raw.get("default", "peak")),
            rules=tuple(BandRule.from_json(r) for r in raw.get("rules") or ()),
        )

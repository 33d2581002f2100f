"""Free-minute bundle cycles.

A card's cycle starts on the day of the month it was first used (`cycle_day`, capped at 28
so every month has it), in the plan's timezone. The debit script resets the bundle when it
meets a new period, carrying over unused seconds (up to the cap) only from the period just
before, so a card idle for months does not pile minutes up.
"""

from __future__ import annotations

from datetime import date, datetime

from prepaid.rating import Bundle
from prepaid.timebands import zone


def _month_before(d: date) -> date:
    return d.replace(year=d.year - 1, month=12) if d.month == 1 else d.replace(month=d.month - 1)


def cycle_day_of(ts: float, timezone: str) -> int:
    return min(datetime.fromtimestamp(ts, zone(timezone)).day, 28)


def periods(ts: float, cycle_day: int, timezone: str) -> tuple[str, str]:
    """(current period, previous period) as the ISO dates their cycles started."""
    day = max(1, min(cycle_day or 1, 28))
    local = datetime.fromtimestamp(ts, zone(timezone)).date()
    start = local.replace(day=day)
    if local.day < day:
        start = _month_before(start)
    return start.isoformat(), _month_before(start).isoformat()


def effective_left(
    bundle: Bundle, left: int, period: str, ts: float, cycle_day: int, timezone: str
) -> int:
    """Seconds of bundle a card has at `ts`, as the next debit would see them."""
    current, previous = periods(ts, cycle_day, timezone)
    if period == current:
        return left
    cap = bundle.rollover_cap_s
    carry = min(left, cap) if cap >= 0 and period == previous else 0
    return bundle.allowance_s + carry

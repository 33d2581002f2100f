"""Dial rules: may this lead be dialled now, and if not, when?

Pure functions of (lead, campaign, now, DNC membership) so they can be checked
exhaustively, including at DST changes. DNC membership is looked up in Redis by the
caller and passed in, which keeps these functions free of I/O.

Time zones: a lead can carry several candidate zones (a number whose area spans two
zones). The calling window must then hold in *every* candidate zone, because calling
someone at 08:00 their time is not excused by it being 09:00 in the next zone.

DST: window edges are local wall-clock times turned into instants with the zone's rules
for that date; a start time that does not exist on a spring-forward day resolves to the
first instant after the gap, and an ambiguous one (fall back) to its first occurrence.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialer.campaign import CallingWindow, Campaign
from dialer.leads import Attempt, Lead, LeadState, Outcome, transition, with_attempt

# A lead whose zones never share an open window within this many iterations is undialable.
_MAX_ZONE_ROUNDS = 16


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def valid_zone(name: str) -> bool:
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def retry_delay_s(campaign: Campaign, outcome: Outcome) -> int | None:
    """None: the outcome closes the lead."""
    r = campaign.retry
    delays: dict[Outcome, int | None] = {
        Outcome.CONNECTED: None,
        Outcome.BUSY: r.busy_s,
        Outcome.NO_ANSWER: r.no_answer_s,
        Outcome.FAILED: r.failed_s,
        Outcome.MACHINE: r.machine_s,
        Outcome.ABANDONED: r.abandoned_s,
        Outcome.SKIPPED: r.skipped_s,
    }
    return delays[outcome]


def _instant(d: date, t: time, tz: ZoneInfo) -> datetime:
    # fold=0: a nonexistent time maps past the gap, an ambiguous one to its first occurrence.
    return datetime.combine(d, t, tzinfo=tz)


def _next_open_in_zone(at: datetime, tz: ZoneInfo, window: CallingWindow) -> datetime | None:
    """First instant >= `at` inside the window in zone `tz`."""
    local_day = at.astimezone(tz).date()
    for offset in range(8):
        day = local_day + timedelta(days=offset)
        if day.weekday() not in window.weekdays:
            continue
        opens = _instant(day, window.start, tz)
        closes = _instant(day, window.end, tz)
        if at < closes:
            return max(at, opens)
    return None


def next_open(at: datetime, zones: tuple[str, ...], window: CallingWindow) -> datetime | None:
    """First instant >= `at` that is inside the window in every zone, or None."""
    if not zones:
        return None
    tzs = [zone(z) for z in zones]
    t = at
    for _ in range(_MAX_ZONE_ROUNDS):
        candidates = [_next_open_in_zone(t, tz, window) for tz in tzs]
        found = [c for c in candidates if c is not None]
        if len(found) != len(candidates):
            return None
        latest = max(found)
        if latest == t:
            return t.astimezone(at.tzinfo)
        t = latest
    return None


def earliest_retry(lead: Lead, campaign: Campaign) -> float | None:
    """Epoch seconds before which the lead must not be redialled; None if no delay applies."""
    if lead.last_outcome is None or lead.last_attempt_at is None:
        return None
    delay = retry_delay_s(campaign, lead.last_outcome)
    if delay is None:
        return None
    return lead.last_attempt_at + delay


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("dial rules need an aware datetime (e.g. datetime.now(UTC))")


def _closing_reason(lead: Lead, campaign: Campaign, on_dnc: bool) -> str | None:
    if on_dnc:
        return "dnc"
    if lead.state.closed:
        return "lead_closed"
    if lead.last_outcome is Outcome.CONNECTED:
        return "lead_closed"
    if lead.attempts >= campaign.max_attempts:
        return "max_attempts"
    if not lead.timezones or not all(valid_zone(z) for z in lead.timezones):
        return "no_timezone"
    return None


def next_dial_time(lead: Lead, campaign: Campaign, now: datetime, *,
                   on_dnc: bool = False) -> datetime | None:
    """When the lead may next be dialled (>= now), or None if never.

    Ignores the campaign's paused flag: pausing delays dialling, it does not close leads.
    """
    _require_aware(now)
    if _closing_reason(lead, campaign, on_dnc) is not None:
        return None
    earliest = now
    retry_at = earliest_retry(lead, campaign)
    if retry_at is not None:
        earliest = max(earliest, datetime.fromtimestamp(retry_at, now.tzinfo))
    return next_open(earliest, lead.timezones, campaign.window)


def may_dial(lead: Lead, campaign: Campaign, now: datetime, *,
             on_dnc: bool = False) -> tuple[bool, str]:
    """(True, "ok") or (False, reason); reasons are single snake_case words for logs/API."""
    _require_aware(now)
    if campaign.paused:
        return False, "campaign_paused"
    reason = _closing_reason(lead, campaign, on_dnc)
    if reason is not None:
        return False, reason
    if lead.state not in (LeadState.PENDING, LeadState.OFFERED, LeadState.DIALING):
        return False, "lead_busy"
    retry_at = earliest_retry(lead, campaign)
    if retry_at is not None and now.timestamp() < retry_at:
        return False, "retry_delay"
    if next_open(now, lead.timezones, campaign.window) != now:
        return False, "outside_window"
    return True, "ok"


def settle_attempt(lead: Lead, attempt: Attempt, campaign: Campaign, now: datetime, *,
                   on_dnc: bool = False) -> Lead:
    """The lead after an attempt: done, blocked, exhausted, or pending until its next time."""
    _require_aware(now)
    after = with_attempt(lead, attempt)
    if attempt.outcome is Outcome.CONNECTED:
        return replace(transition(after, LeadState.DONE), next_at=None)
    if on_dnc:
        return replace(transition(after, LeadState.BLOCKED), next_at=None)
    nxt = next_dial_time(after, campaign, now)
    if nxt is None:
        return replace(transition(after, LeadState.EXHAUSTED), next_at=None)
    return replace(transition(after, LeadState.PENDING), next_at=nxt.timestamp())

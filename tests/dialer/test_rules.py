"""Dial rules: calling window in the lead's time zone (DST included), attempts, retries, DNC."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time

import pytest

from dialer.campaign import CallingWindow, Campaign, RetryDelays
from dialer.leads import Attempt, Lead, LeadState, Outcome
from dialer.rules import may_dial, next_dial_time, settle_attempt

NY = ("America/New_York",)
CAMPAIGN = Campaign("acme", "spring", retry=RetryDelays(busy_s=900, no_answer_s=3600,
                                                         failed_s=1800, machine_s=7200))


def utc(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


def lead(zones: tuple[str, ...] = NY, **kw: object) -> Lead:
    return replace(Lead("spring", "+12125550100", zones), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("now", "expected"), [
    # Saturday 2026-03-07, EST (UTC-5): 09:00 local is 14:00 UTC.
    ("2026-03-07T13:30", "2026-03-07T14:00"),
    # Sunday 2026-03-08, clocks spring forward at 02:00: 09:00 EDT is 13:00 UTC, not 14:00.
    ("2026-03-08T12:30", "2026-03-08T13:00"),
    # 2026-11-01, clocks fall back at 02:00: 09:00 EST is 14:00 UTC again.
    ("2026-11-01T12:30", "2026-11-01T14:00"),
    # Saturday 2026-10-31, still EDT: 09:00 is 13:00 UTC.
    ("2026-10-31T12:30", "2026-10-31T13:00"),
    # 21:00 EST is the end: at 02:30 UTC on 2026-03-08 it is 21:30 EST, next is 09:00 EDT.
    ("2026-03-08T02:30", "2026-03-08T13:00"),
])
def test_window_opens_at_nine_local_across_dst(now: str, expected: str) -> None:
    assert next_dial_time(lead(), CAMPAIGN, utc(now)) == utc(expected)
    assert may_dial(lead(), CAMPAIGN, utc(now)) == (False, "outside_window")


@pytest.mark.parametrize(("now", "allowed"), [
    ("2026-03-08T00:59", True),    # 19:59 EST on the 7th
    ("2026-03-08T01:59", True),    # 20:59 EST
    ("2026-03-08T02:00", False),   # 21:00 EST: window closed (end is exclusive)
    ("2026-11-02T01:30", True),    # 20:30 EST on 1 Nov (after fall-back)
    ("2026-11-01T01:30", False),   # 21:30 EDT on 31 Oct
    ("2026-03-08T13:00", True),    # 09:00 EDT, first minute of the spring-forward day
    ("2026-03-08T12:59", False),   # 08:59 EDT
])
def test_window_edges_in_local_time(now: str, allowed: bool) -> None:
    ok, reason = may_dial(lead(), CAMPAIGN, utc(now))
    assert ok is allowed
    assert reason == ("ok" if allowed else "outside_window")


def test_window_is_the_leads_own_zone_not_the_servers() -> None:
    now = utc("2026-06-01T15:30")  # 11:30 in New York, 08:30 in Los Angeles
    la = lead(("America/Los_Angeles",))
    assert may_dial(lead(), CAMPAIGN, now) == (True, "ok")
    assert may_dial(la, CAMPAIGN, now) == (False, "outside_window")
    assert next_dial_time(la, CAMPAIGN, now) == utc("2026-06-01T16:00")


def test_lead_spanning_two_zones_waits_for_the_later_one() -> None:
    both = lead(("America/New_York", "America/Chicago"))
    now = utc("2026-06-01T13:30")  # 09:30 New York, 08:30 Chicago
    assert may_dial(both, CAMPAIGN, now) == (False, "outside_window")
    assert next_dial_time(both, CAMPAIGN, now) == utc("2026-06-01T14:00")
    # ...and it must stop when the earlier zone closes: 21:00 New York = 20:00 Chicago.
    assert may_dial(both, CAMPAIGN, utc("2026-06-02T01:00")) == (False, "outside_window")


def test_weekdays_restrict_the_window() -> None:
    weekdays_only = replace(CAMPAIGN, window=CallingWindow(time(9), time(21),
                                                           frozenset(range(5))))
    saturday = utc("2026-03-07T16:00")  # 11:00 Saturday in New York
    assert may_dial(lead(), weekdays_only, saturday) == (False, "outside_window")
    assert next_dial_time(lead(), weekdays_only, saturday) == utc("2026-03-09T13:00")


def test_max_attempts_closes_the_lead() -> None:
    now = utc("2026-06-01T15:00")
    tried = lead(attempts=3, last_outcome=Outcome.NO_ANSWER,
                 last_attempt_at=now.timestamp() - 86_400)
    assert may_dial(tried, CAMPAIGN, now) == (False, "max_attempts")
    assert next_dial_time(tried, CAMPAIGN, now) is None


@pytest.mark.parametrize(("outcome", "delay"), [
    (Outcome.BUSY, 900), (Outcome.NO_ANSWER, 3600), (Outcome.FAILED, 1800),
    (Outcome.MACHINE, 7200),
])
def test_retry_delay_depends_on_the_last_outcome(outcome: Outcome, delay: int) -> None:
    at = utc("2026-06-01T15:00")
    tried = lead(attempts=1, last_outcome=outcome, last_attempt_at=at.timestamp())
    assert may_dial(tried, CAMPAIGN, at) == (False, "retry_delay")
    assert next_dial_time(tried, CAMPAIGN, at).timestamp() == at.timestamp() + delay  # type: ignore[union-attr]


def test_retry_landing_after_the_window_moves_to_next_morning() -> None:
    at = utc("2026-06-02T00:30")  # 20:30 New York
    tried = lead(attempts=1, last_outcome=Outcome.NO_ANSWER, last_attempt_at=at.timestamp())
    assert next_dial_time(tried, CAMPAIGN, at) == utc("2026-06-02T13:00")


def test_dnc_is_never_dialled() -> None:
    now = utc("2026-06-01T15:00")
    assert may_dial(lead(), CAMPAIGN, now, on_dnc=True) == (False, "dnc")
    assert next_dial_time(lead(), CAMPAIGN, now, on_dnc=True) is None


def test_paused_campaign_holds_dialling_without_closing_leads() -> None:
    now = utc("2026-06-01T15:00")
    paused = replace(CAMPAIGN, paused=True)
    assert may_dial(lead(), paused, now) == (False, "campaign_paused")
    assert next_dial_time(lead(), paused, now) == now


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        may_dial(lead(), CAMPAIGN, datetime(2026, 6, 1, 15))


def test_settle_attempt_walks_the_lead_state_machine() -> None:
    now = utc("2026-06-01T15:00")
    dialing = lead(state=LeadState.DIALING)
    busy = settle_attempt(dialing, Attempt(now.timestamp(), Outcome.BUSY, 4.0), CAMPAIGN, now)
    assert (busy.state, busy.attempts, busy.next_at) == (
        LeadState.PENDING, 1, now.timestamp() + 4.0 + 900)  # delay runs from the call's end
    done = settle_attempt(replace(busy, state=LeadState.TALKING),
                          Attempt(now.timestamp(), Outcome.CONNECTED, 95.0), CAMPAIGN, now)
    assert done.state is LeadState.DONE and done.next_at is None
    last = settle_attempt(replace(dialing, attempts=2),
                          Attempt(now.timestamp(), Outcome.NO_ANSWER, 30.0), CAMPAIGN, now)
    assert last.state is LeadState.EXHAUSTED
    skipped = settle_attempt(replace(dialing, state=LeadState.OFFERED),
                             Attempt(now.timestamp(), Outcome.SKIPPED), CAMPAIGN, now)
    assert skipped.attempts == 0 and skipped.state is LeadState.PENDING

"""A campaign: what to dial, how, when, and how hard.

The dataclass is frozen: supervisors change a running campaign through
`SupervisorControls`, which writes the store, and the runner re-reads it every pacing
tick, so there is never a second, stale copy being mutated in memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Ids end up inside Redis hash tags ({campaign:T:ID}); braces or colons would break them.
_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class CampaignError(ValueError):
    """A campaign definition or change that cannot be accepted."""


class DialMode(StrEnum):
    PREDICTIVE = "predictive"
    PROGRESSIVE = "progressive"
    PREVIEW = "preview"


class AbandonWindow(StrEnum):
    ROLLING_24H = "24h"
    ROLLING_30D = "30d"

    @property
    def seconds(self) -> int:
        return 86_400 if self is AbandonWindow.ROLLING_24H else 30 * 86_400


@dataclass(frozen=True)
class RetryDelays:
    """Seconds to wait before dialling a lead again, by the outcome of its last attempt."""

    busy_s: int = 15 * 60
    no_answer_s: int = 60 * 60
    failed_s: int = 30 * 60
    machine_s: int = 2 * 60 * 60
    abandoned_s: int = 60 * 60
    skipped_s: int = 5 * 60

    def __post_init__(self) -> None:
        for name in ("busy_s", "no_answer_s", "failed_s", "machine_s", "abandoned_s",
                     "skipped_s"):
            if getattr(self, name) < 0:
                raise CampaignError(f"retry delay {name} must be >= 0")


@dataclass(frozen=True)
class CallingWindow:
    """When a lead may be called, in the lead's own local time: [start, end) on weekdays
    (0 = Monday). Windows crossing midnight are refused: no law asks for them."""

    start: time = time(9, 0)
    end: time = time(21, 0)
    weekdays: frozenset[int] = frozenset(range(7))

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise CampaignError(
                f"calling window start {self.start} must be before end {self.end}")
        if not self.weekdays or not self.weekdays <= frozenset(range(7)):
            raise CampaignError("calling window weekdays must be a non-empty subset of 0..6")


@dataclass(frozen=True)
class Campaign:
    tenant: str
    campaign_id: str
    mode: DialMode = DialMode.PROGRESSIVE
    name: str = ""
    trunk: str = ""
    # Asterisk dial string with a {number} placeholder, e.g. "PJSIP/{number}@carrier-a".
    dial_string: str = ""
    caller_id: str = ""
    agent_queue: str = ""
    dial_timeout_s: int = 30
    max_attempts: int = 3
    retry: RetryDelays = field(default_factory=RetryDelays)
    window: CallingWindow = field(default_factory=CallingWindow)
    # Region used to read numbers written without a country code.
    default_region: str = "US"
    # Used when a row has no timezone and the number does not pin one down.
    fallback_timezone: str | None = None
    abandon_target: float = 0.03
    abandon_window: AbandonWindow = AbandonWindow.ROLLING_24H
    # An answered call not connected to an agent within this many seconds is abandoned.
    connect_within_s: float = 2.0
    # Calls in flight (ringing + answered, waiting) per staffed agent, at most.
    max_ratio: float = 3.0
    # This campaign's share of the trunk; limits/ still has the last word per call.
    max_channels: int = 30
    max_cps: float = 5.0
    # Must match the queue's wrapuptime: an agent is not offered calls during it.
    wrap_up_s: float = 10.0
    paused: bool = False

    def __post_init__(self) -> None:
        for label, value in (("tenant", self.tenant), ("campaign_id", self.campaign_id)):
            if not _ID_RE.match(value):
                raise CampaignError(
                    f"{label} {value!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
        if not isinstance(self.mode, DialMode):
            raise CampaignError(f"mode must be one of {[m.value for m in DialMode]}")
        if self.dial_timeout_s <= 0 or self.dial_timeout_s > 300:
            raise CampaignError("dial_timeout_s must be in 1..300")
        if self.max_attempts < 1:
            raise CampaignError("max_attempts must be >= 1")
        if not 0.0 <= self.abandon_target <= 0.5:
            raise CampaignError("abandon_target is a fraction (0.03 = 3 %), 0..0.5")
        if not 0.0 < self.connect_within_s <= 30.0:
            raise CampaignError("connect_within_s must be in (0, 30]")
        if not 1.0 <= self.max_ratio <= 20.0:
            raise CampaignError("max_ratio must be in 1..20")
        if self.max_channels < 1:
            raise CampaignError("max_channels must be >= 1")
        if self.max_cps <= 0:
            raise CampaignError("max_cps must be > 0")
        if self.wrap_up_s < 0:
            raise CampaignError("wrap_up_s must be >= 0")
        if self.fallback_timezone is not None:
            try:
                ZoneInfo(self.fallback_timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise CampaignError(
                    f"fallback_timezone {self.fallback_timezone!r} is not a known zone") from exc

    @property
    def key_tag(self) -> str:
        """Redis hash tag shared by every key of this campaign (one cluster slot)."""
        return f"{{campaign:{self.tenant}:{self.campaign_id}}}"

    def dial_target(self, number: str) -> str:
        """The Asterisk channel to originate for an E.164 number."""
        return self.dial_string.replace("{number}", number)


def campaign_key_tag(tenant: str, campaign_id: str) -> str:
    return f"{{campaign:{tenant}:{campaign_id}}}"


def check_id(label: str, value: str) -> str:
    if not _ID_RE.match(value):
        raise CampaignError(f"{label} {value!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return value

"""Leads, their attempts, and the lead state machine.

    pending ──claim──> dialing ──answer──> answered ──agent──> talking ──> done
       ^  │               │                    │
       │  └─offer─> offered ─accept─> dialing  └─ abandoned ─┐
       │                │ skip / expiry                      │
       └────────────────┴── busy, no answer, failed, machine, abandoned (retry) ──┘
    any open state ──> exhausted (max attempts, or no dialable time left) | blocked (DNC)

Every dial ends in exactly one `Attempt`, recorded with its time, outcome and duration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum


class LeadState(StrEnum):
    PENDING = "pending"
    OFFERED = "offered"
    DIALING = "dialing"
    ANSWERED = "answered"
    TALKING = "talking"
    DONE = "done"
    EXHAUSTED = "exhausted"
    BLOCKED = "blocked"

    @property
    def closed(self) -> bool:
        return self in _CLOSED


_CLOSED = frozenset({LeadState.DONE, LeadState.EXHAUSTED, LeadState.BLOCKED})

_ALLOWED: dict[LeadState, frozenset[LeadState]] = {
    LeadState.PENDING: frozenset({LeadState.DIALING, LeadState.OFFERED, LeadState.EXHAUSTED,
                                  LeadState.BLOCKED, LeadState.PENDING}),
    LeadState.OFFERED: frozenset({LeadState.DIALING, LeadState.PENDING, LeadState.OFFERED,
                                  LeadState.EXHAUSTED, LeadState.BLOCKED}),
    LeadState.DIALING: frozenset({LeadState.ANSWERED, LeadState.TALKING, LeadState.PENDING,
                                  LeadState.EXHAUSTED, LeadState.DONE, LeadState.BLOCKED}),
    LeadState.ANSWERED: frozenset({LeadState.TALKING, LeadState.PENDING, LeadState.EXHAUSTED,
                                   LeadState.DONE, LeadState.BLOCKED}),
    LeadState.TALKING: frozenset({LeadState.DONE, LeadState.PENDING, LeadState.EXHAUSTED,
                                  LeadState.BLOCKED}),
    LeadState.DONE: frozenset(),
    LeadState.EXHAUSTED: frozenset({LeadState.PENDING}),  # an operator may reopen a lead
    LeadState.BLOCKED: frozenset({LeadState.PENDING}),
}


class LeadTransitionError(ValueError):
    pass


class Outcome(StrEnum):
    CONNECTED = "connected"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    MACHINE = "machine"
    ABANDONED = "abandoned"
    # A preview agent passed on the lead: not a dial, not counted against max attempts.
    SKIPPED = "skipped"

    @property
    def counts_as_dial(self) -> bool:
        return self is not Outcome.SKIPPED


@dataclass(frozen=True)
class Attempt:
    at: float  # when the call was placed

    outcome: Outcome
    duration_s: float = 0.0
    call_id: str = ""
    agent: str = ""


@dataclass(frozen=True)
class Lead:
    campaign_id: str
    phone: str  # E.164; also the lead's id within its campaign
    timezones: tuple[str, ...]
    state: LeadState = LeadState.PENDING
    attempts: int = 0
    last_outcome: Outcome | None = None
    last_attempt_at: float | None = None
    next_at: float | None = None
    line: int | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    offered_to: str = ""

    @property
    def lead_id(self) -> str:
        return self.phone


def transition(lead: Lead, to: LeadState) -> Lead:
    if to not in _ALLOWED[lead.state]:
        raise LeadTransitionError(f"lead {lead.phone}: {lead.state} -> {to} is not allowed")
    return replace(lead, state=to)


def with_attempt(lead: Lead, attempt: Attempt) -> Lead:
    """The lead after an attempt, before deciding when (or whether) to dial it again."""
    return replace(
        lead,
        attempts=lead.attempts + (1 if attempt.outcome.counts_as_dial else 0),
        last_outcome=attempt.outcome,
        last_attempt_at=attempt.at + attempt.duration_s,  # retry delays run from the end
        offered_to="",
    )

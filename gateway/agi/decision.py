"""The CALLGATE_* channel variables: the public contract between callgate and dialplans.

Values are checked here, so a route cannot put a reason on a channel that no dialplan
was written for. CALLGATE_RESULT is set last: a dialplan that tests it sees either the
previous call's full decision or this call's full decision, never a half-written one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.agi.session import AgiSession

RESULTS = frozenset({"ALLOW", "DENY"})
REASONS = frozenset(
    {
        "ok",
        "emergency",
        "surcharge",
        "tenant_limit",
        "trunk_full",
        "number_full",
        "device_busy",
        "device_offline",
        "license_pool_empty",
        "no_credit",
        "no_route",
        "card_blocked",
        "bad_pin",
        "unknown_tenant",
        "backend_unavailable",
        "bad_request",
    }
)

# Channel variables other modules read back (AMI VarSet, Status) by name.
LEASE_VAR = "CALLGATE_LEASE"
REQUEST_VAR = "CALLGATE_REQUEST"  # the gateway's own record of the request, for reconcile

CAUSE_REJECTED = 21  # Q.850 call rejected
CAUSE_NO_CIRCUIT = 34  # Q.850 no circuit/channel available: the gateway is at its cap
CAUSE_TEMPORARY_FAILURE = 41  # Q.850 temporary failure: a backend failed


@dataclass(frozen=True)
class Decision:
    result: str
    reason: str
    cause: int
    lease: str
    maxsec: int

    def __post_init__(self) -> None:
        if self.result not in RESULTS:
            raise ValueError(f"CALLGATE_RESULT must be ALLOW or DENY, not {self.result!r}")
        if self.reason not in REASONS:
            raise ValueError(f"CALLGATE_REASON {self.reason!r} is not in the public contract")
        if not 0 <= self.cause <= 127:
            raise ValueError(f"CALLGATE_CAUSE {self.cause} is not a Q.850 cause (0-127)")
        if self.maxsec < 0:
            raise ValueError(f"CALLGATE_MAXSEC must be >= 0, not {self.maxsec}")
        if self.result == "DENY" and self.lease:
            raise ValueError("a DENY holds no lease: CALLGATE_LEASE must be empty")

    @classmethod
    def deny(cls, reason: str, cause: int = CAUSE_REJECTED) -> Decision:
        return cls("DENY", reason, cause, "", 0)

    def variables(self) -> list[tuple[str, str]]:
        """In the order they are set: CALLGATE_RESULT last."""
        return [
            ("CALLGATE_REASON", self.reason),
            ("CALLGATE_CAUSE", str(self.cause)),
            ("CALLGATE_LEASE", self.lease),
            ("CALLGATE_MAXSEC", str(self.maxsec)),
            ("CALLGATE_RESULT", self.result),
        ]


async def apply_decision(
    session: AgiSession, decision: Decision, extra: Sequence[tuple[str, str]] = ()
) -> None:
    """Set `extra` variables, then the decision's, CALLGATE_RESULT last."""
    await session.set_variables([*extra, *decision.variables()])


async def set_decision(
    session: AgiSession, result: str, reason: str, cause: int, lease: str, maxsec: int
) -> None:
    """Set the five CALLGATE_* variables on the channel (ValueError if out of contract)."""
    await apply_decision(session, Decision(result, reason, cause, lease, maxsec))

"""The dataclasses at the edge of limits/: what a caller asks and what it gets back."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from limits.reasons import CAUSES, Reason, Result
from limits.scopes import NAME_RE, InvalidName, ScopeKind, check_name


class Direction(StrEnum):
    IN = "in"
    OUT = "out"

    @property
    def counter(self) -> str:
        return "inbound" if self is Direction.IN else "outbound"


class OverflowPolicy(StrEnum):
    """What a tenant's call gets at its limit: refused, or allowed at a surcharge up to the
    counter's hard maximum."""

    REFUSE = "refuse"
    SURCHARGE = "surcharge"


class BackendPolicy(StrEnum):
    """What a call gets while Redis is unreachable (emergency calls always pass)."""

    FAIL_CLOSED = "fail_closed"
    FAIL_OPEN = "fail_open"


class InvalidRequest(ValueError):
    """A call request that cannot be decided; the gateway answers `bad_request`."""


@dataclass(frozen=True, slots=True)
class CallRequest:
    """One call to authorize. `dest` is the dialled number (emergency check); `call_id` and
    `origin` (the Asterisk server) are stored on the lease for operators and reconciliation."""

    tenant: str
    direction: Direction
    dest: str = ""
    trunk: str | None = None
    number: str | None = None
    device: str | None = None
    pools: tuple[str, ...] = ()
    call_id: str = ""
    origin: str = ""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "direction", Direction(self.direction))
        except ValueError:
            raise InvalidRequest(
                f"direction must be 'in' or 'out', got {self.direction!r}") from None
        try:
            check_name("tenant", self.tenant)
            for what, value in (("trunk", self.trunk), ("number", self.number),
                                ("device", self.device)):
                if value is not None:
                    check_name(what, value)
            if isinstance(self.pools, str):
                raise InvalidName("pools must be a tuple of pool names, not one string")
            object.__setattr__(self, "pools", tuple(self.pools))
            for pool in self.pools:
                check_name("pool", pool)
        except InvalidName as exc:
            raise InvalidRequest(str(exc)) from None
        if not isinstance(self.dest, str) or len(self.dest) > 128:
            raise InvalidRequest("dest must be a string of at most 128 characters")
        for what, value in (("call_id", self.call_id), ("origin", self.origin)):
            if value and not NAME_RE.match(value):
                raise InvalidRequest(f"{what} {value!r} is not a valid identifier")


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one call. `held` lists the scope ids the lease holds; `refused_scope`
    names the scope that said no. `journaled` marks a grant made while Redis was down
    (written back when it returns)."""

    result: Result
    reason: Reason
    cause: int
    lease_id: str = ""
    maxsec: int = 0
    surcharge: bool = False
    emergency: bool = False
    held: tuple[str, ...] = ()
    refused_scope: str = ""
    journaled: bool = False

    @property
    def allowed(self) -> bool:
        return self.result is Result.ALLOW

    @property
    def never_charge(self) -> bool:
        return self.emergency

    @classmethod
    def deny(cls, reason: Reason, refused_scope: str = "") -> Decision:
        return cls(Result.DENY, reason, CAUSES[reason], refused_scope=refused_scope)

    def channel_vars(self) -> dict[str, str]:
        """The contract's channel variables for this decision."""
        return {
            "CALLGATE_RESULT": self.result.value,
            "CALLGATE_REASON": self.reason.value,
            "CALLGATE_CAUSE": str(self.cause),
            "CALLGATE_LEASE": self.lease_id,
            "CALLGATE_MAXSEC": str(self.maxsec),
        }


@dataclass(frozen=True, slots=True)
class ScopeStatus:
    kind: ScopeKind
    name: str
    tenant: str
    limit: int | None
    in_use: int
    surcharged: int = 0
    hard_max: int | None = None
    cps: float | None = None


@dataclass(frozen=True, slots=True)
class TenantStatus:
    tenant: str
    reseller: str | None
    policy: OverflowPolicy
    inbound: ScopeStatus
    outbound: ScopeStatus
    total: ScopeStatus
    surcharged: int


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    lease_id: str
    tenant: str
    status: str
    scopes: tuple[str, ...]
    surcharged: tuple[str, ...] = ()
    flags: frozenset[str] = frozenset()
    call_id: str = ""
    origin: str = ""
    created: float | None = None
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class RenewReport:
    renewed: tuple[str, ...]
    gone: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CounterFix:
    counter: str  # 'used', 'surcharged', 'dangling' (deadline, no lease), 'no_deadline'
    scope: str
    was: int
    now: int


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What reconciliation changed. `freed`: leases with no live call; `restored`: live
    calls whose lease was gone, counted again under their lease id; `counted`: live calls
    that had no lease, counted under a new one (call_id -> lease id, for the gateway to set
    `CALLGATE_LEASE`); `unrecoverable`: live lease ids that were gone and came with no
    request to re-count them; `already_released`: live lease ids released moments ago
    (the hangup raced the snapshot); `fixed_counters`: counters that had drifted from
    their leases."""

    freed: tuple[LeaseInfo, ...] = ()
    restored: tuple[str, ...] = ()
    counted: tuple[tuple[str, str], ...] = ()
    unrecoverable: tuple[str, ...] = ()
    already_released: tuple[str, ...] = ()
    fixed_counters: tuple[CounterFix, ...] = ()
    renewed: int = 0
    skipped_young: int = 0

    @property
    def fixed(self) -> bool:
        return bool(self.freed or self.restored or self.counted or self.fixed_counters)

    def summary(self) -> dict[str, object]:
        return {
            "freed": [lease.lease_id for lease in self.freed],
            "restored": list(self.restored),
            "counted": dict(self.counted),
            "unrecoverable": list(self.unrecoverable),
            "already_released": list(self.already_released),
            "fixed_counters": [
                f"{fix.counter} {fix.scope} {fix.was}->{fix.now}" for fix in self.fixed_counters
            ],
            "renewed": self.renewed,
            "skipped_young": self.skipped_young,
        }

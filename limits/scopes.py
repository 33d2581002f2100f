"""Scope ids: the names under which one counter lives in Redis and appears in logs.

Tenant-owned scopes (its counters, its DIDs, its phones, its license pools) carry the
tenant in their id, so two tenants that both have a phone `100` or a pool `dialer_seat`
never share a counter and a query for one tenant can never reach another's (invariant 4).
Trunks belong to the site. Names may not contain `/` or spaces, which keeps every id
unambiguous and lets a lease store its scopes as one space-separated string.

| kind               | scope id                   |
|--------------------|----------------------------|
| `tenant_inbound`   | `tenant/<tenant>/inbound`  |
| `tenant_outbound`  | `tenant/<tenant>/outbound` |
| `tenant_total`     | `tenant/<tenant>/total`    |
| `trunk`            | `trunk/<trunk>`            |
| `number`           | `number/<tenant>/<did>`    |
| `device`           | `device/<tenant>/<device>` |
| `pool`             | `pool/<tenant>/<pool>`     |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

NAME_RE = re.compile(r"^[A-Za-z0-9_.:@+*#-]{1,64}$")
LEASE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class InvalidName(ValueError):
    """A tenant, trunk, number, device, pool or lease name that cannot be a scope."""


class ScopeKind(StrEnum):
    TENANT_INBOUND = "tenant_inbound"
    TENANT_OUTBOUND = "tenant_outbound"
    TENANT_TOTAL = "tenant_total"
    TRUNK = "trunk"
    NUMBER = "number"
    DEVICE = "device"
    POOL = "pool"

    @property
    def tenant_owned(self) -> bool:
        return self is not ScopeKind.TRUNK


_TENANT_COUNTER = {
    ScopeKind.TENANT_INBOUND: "inbound",
    ScopeKind.TENANT_OUTBOUND: "outbound",
    ScopeKind.TENANT_TOTAL: "total",
}
_COUNTER_KIND = {v: k for k, v in _TENANT_COUNTER.items()}


def check_name(what: str, value: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidName(
            f"{what} {value!r} is not a valid name: 1-64 of letters, digits and _ . : @ + * # -"
        )
    return value


def check_lease_id(value: str) -> str:
    if not isinstance(value, str) or not LEASE_ID_RE.match(value):
        raise InvalidName(f"lease id {value!r} is not valid: 1-64 of letters, digits, _ and -")
    return value


def tenant_counter(kind: ScopeKind) -> str:
    return _TENANT_COUNTER[kind]


@dataclass(frozen=True, slots=True)
class ScopeRef:
    """One scope: a kind, the owning tenant ('' for trunks) and the scope's own name."""

    kind: ScopeKind
    name: str
    tenant: str = ""

    @classmethod
    def of(cls, kind: ScopeKind | str, name: str, tenant: str | None = None) -> ScopeRef:
        kind = ScopeKind(kind)
        check_name(kind.value, name)
        if kind in _TENANT_COUNTER:
            if tenant not in (None, "", name):
                raise InvalidName(f"a {kind.value} scope is named by its tenant, got {tenant!r}")
            return cls(kind, name, name)
        if kind.tenant_owned:
            if not tenant:
                raise InvalidName(f"a {kind.value} scope belongs to a tenant: give tenant=")
            return cls(kind, name, check_name("tenant", tenant))
        if tenant:
            raise InvalidName("trunks belong to the site, not to a tenant")
        return cls(kind, name, "")

    @property
    def id(self) -> str:
        if self.kind in _TENANT_COUNTER:
            return f"tenant/{self.name}/{_TENANT_COUNTER[self.kind]}"
        if self.kind is ScopeKind.TRUNK:
            return f"trunk/{self.name}"
        return f"{self.kind.value}/{self.tenant}/{self.name}"

    @classmethod
    def parse(cls, scope_id: str) -> ScopeRef:
        parts = scope_id.split("/")
        if len(parts) == 3 and parts[0] == "tenant" and parts[2] in _COUNTER_KIND:
            return cls(_COUNTER_KIND[parts[2]], parts[1], parts[1])
        if len(parts) == 2 and parts[0] == "trunk":
            return cls(ScopeKind.TRUNK, parts[1], "")
        if len(parts) == 3 and parts[0] in ("number", "device", "pool"):
            return cls(ScopeKind(parts[0]), parts[2], parts[1])
        raise InvalidName(f"not a scope id: {scope_id!r}")


def tenant_scope(tenant: str, kind: ScopeKind) -> str:
    return f"tenant/{tenant}/{_TENANT_COUNTER[kind]}"


def trunk_scope(trunk: str) -> str:
    return f"trunk/{trunk}"


def owned_scope(kind: ScopeKind, tenant: str, name: str) -> str:
    return f"{kind.value}/{tenant}/{name}"


def tenant_surcharge_field(tenant: str) -> str:
    """Field of the surcharged hash counting a tenant's live surcharged calls."""
    return f"tenant/{tenant}"

"""JSON views of the limits dataclasses, shared by the limits and calls resources."""

from __future__ import annotations

from typing import Any

from gateway.api.routes import RequestContext
from limits import LeaseInfo, LimitSettings, ScopeStatus, TenantStatus


def scope_json(s: ScopeStatus) -> dict[str, Any]:
    return {"kind": s.kind.value, "name": s.name, "tenant": s.tenant, "limit": s.limit,
            "in_use": s.in_use, "surcharged": s.surcharged, "hard_max": s.hard_max,
            "cps": s.cps}


def tenant_json(t: TenantStatus) -> dict[str, Any]:
    return {"tenant": t.tenant, "reseller": t.reseller, "overflow": t.policy.value,
            "inbound": scope_json(t.inbound), "outbound": scope_json(t.outbound),
            "total": scope_json(t.total), "surcharged": t.surcharged}


def lease_json(lease: LeaseInfo) -> dict[str, Any]:
    return {"lease_id": lease.lease_id, "tenant": lease.tenant, "status": lease.status,
            "scopes": list(lease.scopes), "surcharged": list(lease.surcharged),
            "flags": sorted(lease.flags), "call_id": lease.call_id, "origin": lease.origin,
            "created": lease.created, "deadline": lease.deadline}


def limit_settings(ctx: RequestContext) -> LimitSettings:
    """The routes that call this declare `needs=("limits",)`, checked before they run."""
    service = ctx.deps.limits
    if service is None:  # pragma: no cover - guarded by `needs`
        raise RuntimeError("limits service missing")
    return service.settings

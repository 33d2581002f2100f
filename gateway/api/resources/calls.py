"""Calls holding slots (leases), joined with the live calls Asterisk reports.

A lease names its tenant, so tenant tokens see their leases. The live call of a lease is
found by its `CALLGATE_LEASE` channel variable. Live calls holding no lease name no tenant
and are listed (`unleased`) for site-wide tokens only. Without a live-call source (no AMI
configured) leases are listed with `live: null` and `live_known: false`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from gateway.api.access import Scope
from gateway.api.live_calls import LiveCall
from gateway.api.resources.views import lease_json
from gateway.api.routes import ALL_ROLES, Reply, RequestContext, Route
from gateway.api.schemas import OPT_NUMBER, TENANT_QUERY
from limits import InvalidName, ScopeKind, ScopeRef

LIVE_CALL: dict[str, Any] = {
    "type": "object",
    "required": ["asterisk", "call_id", "lease_id", "channels", "answered", "caller", "exten"],
    "additionalProperties": False,
    "properties": {
        "asterisk": {"type": "string"},
        "call_id": {"type": "string", "description": "Asterisk's Linkedid"},
        "lease_id": {"type": "string"},
        "channels": {"type": "array", "items": {"type": "string"}},
        "answered": {"type": "boolean"},
        "caller": {"type": "string"},
        "exten": {"type": "string"},
    },
}
CALL: dict[str, Any] = {
    "type": "object",
    "required": ["lease_id", "tenant", "status", "scopes", "surcharged", "flags", "call_id",
                 "origin", "created", "deadline", "live"],
    "additionalProperties": False,
    "properties": {
        "lease_id": {"type": "string"},
        "tenant": {"type": "string"},
        "status": {"type": "string"},
        "scopes": {"type": "array", "items": {"type": "string"},
                   "description": "scope ids whose slots the call holds (a reseller's "
                                  "counters are shown only to tokens that may see it)"},
        "surcharged": {"type": "array", "items": {"type": "string"}},
        "flags": {"type": "array", "items": {"type": "string"}},
        "call_id": {"type": "string"},
        "origin": {"type": "string", "description": "the Asterisk server"},
        "created": {**OPT_NUMBER, "description": "epoch seconds"},
        "deadline": {**OPT_NUMBER, "description": "lease expiry unless renewed, epoch s"},
        "live": {"type": ["object", "null"], "properties": LIVE_CALL["properties"],
                 "additionalProperties": False},
    },
}
CALLS: dict[str, Any] = {
    "type": "object",
    "required": ["calls", "unleased", "live_known"],
    "additionalProperties": False,
    "properties": {
        "calls": {"type": "array", "items": CALL},
        "unleased": {"type": "array", "items": LIVE_CALL,
                     "description": "live calls holding no lease (site-wide tokens only)"},
        "live_known": {"type": "boolean",
                       "description": "false when no live-call source is configured"},
    },
}


async def _live(ctx: RequestContext) -> list[LiveCall] | None:
    provider = ctx.deps.live_calls
    if provider is None:
        return None
    got = provider()
    found: Iterable[LiveCall] = await got if inspect.isawaitable(got) else got
    return list(found)


async def _visible_scopes(ctx: RequestContext, scopes: Iterable[str]) -> list[str]:
    """A sub-tenant's call also holds its resellers' counters; those are theirs to see."""
    out = []
    for scope in scopes:
        try:
            ref = ScopeRef.parse(scope)
        except InvalidName:
            continue
        if ref.kind is ScopeKind.TRUNK or await ctx.tenants.may_read(ref.tenant):
            out.append(scope)
    return out


async def list_calls(ctx: RequestContext) -> Reply:
    limits = ctx.deps.limits
    assert limits is not None  # guarded by `needs`
    only = ctx.tenant_filter()
    leases = await limits.leases(tenant=only)
    visible = set(await ctx.tenants.readable({lease.tenant for lease in leases}))
    leases = [lease for lease in leases if lease.tenant in visible]
    live = await _live(ctx)
    by_lease = {c.lease_id: c for c in live or () if c.lease_id}
    calls = []
    for lease in sorted(leases, key=lambda x: (x.created or 0.0, x.lease_id)):
        entry = lease_json(lease)
        entry["scopes"] = await _visible_scopes(ctx, lease.scopes)
        entry["surcharged"] = await _visible_scopes(ctx, lease.surcharged)
        call = by_lease.get(lease.lease_id)
        entry["live"] = None if call is None else call.as_json()
        calls.append(entry)
    unleased: list[dict[str, Any]] = []
    if ctx.tenants.site_wide and only is None and live is not None:
        unleased = [c.as_json() for c in live if not c.lease_id]
    return Reply({"calls": calls, "unleased": unleased, "live_known": live is not None})


ROUTES = (
    Route("GET", "/v1/calls", "list_calls", "Calls holding slots, with their live state",
          "calls", list_calls, ALL_ROLES, Scope.FILTERED, CALLS,
          query={"tenant": TENANT_QUERY}, needs=("limits",)),
)

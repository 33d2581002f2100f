"""Tenant counters: inbound, outbound and total concurrent calls, the hard maximum of each
under the surcharge policy, the overflow policy and the tenant's reseller.

PUT changes only the fields it names (absent: unchanged; null: unlimited / none). The
whole request is checked against the tenant's current settings before the first write,
so a request with one bad field changes nothing. The reseller is written first: it is the
one change limits/ may still refuse (a reseller chain that would loop or grow too deep),
and then nothing else has been written.
"""

from __future__ import annotations

from typing import Any

from gateway.api.access import MAX_DEPTH, Scope
from gateway.api.errors import invalid
from gateway.api.resources.views import limit_settings, tenant_json
from gateway.api.routes import ALL_ROLES, Param, Reply, RequestContext, Route
from gateway.api.schemas import COUNT, NAME, SCOPE_STATUS, TENANT_PARAM, TENANT_QUERY, list_of
from gateway.api.tokens import Role
from limits import InvalidLimit, ScopeKind

COUNTERS = ("inbound", "outbound", "total")
CHANGERS = frozenset({Role.ADMIN, Role.OPERATOR, Role.RESELLER})

TENANT_STATUS: dict[str, Any] = {
    "type": "object",
    "required": ["tenant", "reseller", "overflow", "inbound", "outbound", "total",
                 "surcharged"],
    "additionalProperties": False,
    "properties": {
        "tenant": {"type": "string"},
        "reseller": {"type": ["string", "null"]},
        "overflow": {"type": "string", "enum": ["refuse", "surcharge"]},
        "inbound": SCOPE_STATUS,
        "outbound": SCOPE_STATUS,
        "total": SCOPE_STATUS,
        "surcharged": {"type": "integer", "description": "live calls at a surcharge"},
    },
}

TENANT_CHANGE: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        "inbound": {**COUNT, "description": "concurrent inbound calls; null = unlimited"},
        "outbound": {**COUNT, "description": "concurrent outbound calls; null = unlimited"},
        "total": {**COUNT, "description": "concurrent calls both ways; null = unlimited"},
        "hard_max": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "description": "under the surcharge policy, calls between a counter's limit and "
                           "its hard maximum are allowed at a surcharge; must be >= the limit",
            "properties": {c: COUNT for c in COUNTERS},
        },
        "overflow": {"type": "string", "enum": ["refuse", "surcharge"],
                     "description": "what a call over the limit gets"},
        "reseller": {"type": ["string", "null"], "pattern": NAME["pattern"],
                     "description": "the tenant's reseller (site-wide tokens only); "
                                    "null = none"},
    },
}


async def list_tenants(ctx: RequestContext) -> Reply:
    settings = limit_settings(ctx)
    only = ctx.tenant_filter()
    if only is not None:
        names: list[str] = [only]
    else:
        found: set[str] = set()
        for kind in ScopeKind:
            if kind.tenant_owned:
                found.update(s.tenant for s in await settings.list_scopes(kind))
        if not ctx.tenants.site_wide:
            found.add(ctx.caller.tenant)
        names = sorted(await ctx.tenants.readable(found))
    return Reply({"tenants": [tenant_json(await settings.show_tenant(t)) for t in names]})


async def show_tenant(ctx: RequestContext) -> Reply:
    return Reply(tenant_json(await limit_settings(ctx).show_tenant(ctx.path["tenant"])))


async def change_tenant(ctx: RequestContext) -> Reply:
    tenant: str = ctx.path["tenant"]
    body: dict[str, Any] = ctx.body
    ctx.refuse_field_unless_site("reseller")
    settings = limit_settings(ctx)
    current = await settings.show_tenant(tenant)
    hard_body: dict[str, int | None] = body.get("hard_max", {})
    counters: list[tuple[str, int | None, int | None]] = []
    for counter in COUNTERS:
        if counter not in body and counter not in hard_body:
            continue
        now = getattr(current, counter)
        limit = body[counter] if counter in body else now.limit
        hard = hard_body[counter] if counter in hard_body else now.hard_max
        if hard is not None and (limit is None or hard < limit):
            at_fault = f"hard_max.{counter}" if counter in hard_body else counter
            raise invalid("hard_max_below_limit",
                          f"the {counter} hard maximum ({hard}) must be at least the {counter} "
                          f"limit ({'unlimited' if limit is None else limit}); change both "
                          "together or set hard_max to null", at_fault)
        counters.append((counter, limit, hard))
    if "reseller" in body:
        reseller = body["reseller"]
        if reseller is not None:
            await _check_reseller(ctx, tenant, reseller)
        try:
            await settings.set_reseller(tenant, reseller)
        except InvalidLimit as exc:
            raise invalid("reseller_invalid", str(exc), "reseller") from None
    for counter, limit, hard in counters:
        await settings.set_tenant_limit(tenant, counter, limit, hard_max=hard)
    if "overflow" in body:
        await settings.set_tenant_policy(tenant, body["overflow"])
    ctx.log.info("api_limits_changed", tenant=tenant, fields=sorted(body))
    return Reply(tenant_json(await settings.show_tenant(tenant)))


async def _check_reseller(ctx: RequestContext, tenant: str, reseller: str) -> None:
    if reseller == tenant:
        raise invalid("reseller_invalid", "a tenant cannot be its own reseller", "reseller")
    settings = limit_settings(ctx)
    up: str | None = reseller
    seen = {tenant}
    while up is not None:
        if up in seen:
            raise invalid("reseller_invalid", f"{reseller!r} is beneath {tenant!r}: making it "
                          f"{tenant!r}'s reseller would make a loop", "reseller")
        if len(seen) > MAX_DEPTH:
            break  # limits/ refuses chains this deep itself
        seen.add(up)
        up = (await settings.show_tenant(up)).reseller


ROUTES = (
    Route("GET", "/v1/limits/tenants", "list_tenant_limits", "List tenants' counters",
          "limits", list_tenants, ALL_ROLES, Scope.FILTERED, list_of("tenants", TENANT_STATUS),
          description="Tenants with a limit or calls in use (on any of their counters, "
                      "numbers, devices or pools) that the token may see (a tenant token: "
                      "itself; a reseller: itself and its sub-tenants).",
          query={"tenant": TENANT_QUERY}, needs=("limits",)),
    Route("GET", "/v1/limits/tenants/{tenant}", "get_tenant_limits",
          "A tenant's counters, policy and reseller", "limits", show_tenant, ALL_ROLES,
          Scope.TENANT, TENANT_STATUS, path_params={"tenant": TENANT_PARAM},
          needs=("limits",)),
    Route("PUT", "/v1/limits/tenants/{tenant}", "put_tenant_limits",
          "Change a tenant's counters, hard maxima, overflow policy or reseller", "limits",
          change_tenant, CHANGERS, Scope.TENANT, TENANT_STATUS,
          description="Only the fields given change. A site-wide token may change any "
                      "tenant; a reseller its sub-tenants (not itself, and not `reseller`).",
          path_params={"tenant": Param(NAME, "The tenant.", "acme")},
          body=TENANT_CHANGE,
          body_example={"outbound": 20, "total": 30, "hard_max": {"total": 35},
                        "overflow": "surcharge"},
          needs=("limits",)),
)

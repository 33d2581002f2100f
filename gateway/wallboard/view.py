"""One viewer's wallboard snapshot: the site sample cut down to what the token may see.

DESIGN invariant 4: a tenant token sees its own tenant only (a reseller: itself and the
tenants beneath it), with the same rules as the /v1/ API (gateway.api.access). Trunks
belong to the site and count every tenant's calls, so only site-wide tokens see them;
the decision chart of a tenant token counts that tenant's decisions only.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from gateway.api.access import TenantAccess
from gateway.api.tokens import TokenInfo
from gateway.wallboard.deps import CampaignFigures, CardFigures, WallboardDeps
from gateway.wallboard.sample import COUNTERS, SiteSample, SiteSampler
from gateway.wallboard.tally import DecisionTally
from limits import BackendUnavailable, ScopeStatus

SCHEMA_VERSION = 1
_COUNTER_KIND = {name: kind for kind, name in COUNTERS.items()}


async def snapshot(principal: TokenInfo, deps: WallboardDeps,
                   sampler: SiteSampler) -> dict[str, Any]:
    sample = await sampler.sample()

    async def parent_of(tenant: str) -> str | None:
        return await sampler.parent_of(sample, tenant)

    access = TenantAccess(principal, parent_of if deps.limits is not None else None)
    errors = dict(sample.errors)
    try:
        visible = await _visible_tenants(access, sample, deps.decisions)
    except (BackendUnavailable, RedisError, OSError):
        # Resellers cannot be looked up: show the token's own tenant only.
        visible = {principal.tenant}
        errors["tenants"] = "sub-tenants could not be looked up (Redis did not answer)"
    body: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "site": deps.site,
        "at": sample.taken_at,
        "interval": deps.interval,
        "viewer": {"role": principal.role.value, "tenant": principal.tenant,
                   "site_wide": principal.site_wide},
        "errors": errors,
        "tenants": None,
        "tenants_more": 0,
        "trunks": None,
        "trunks_more": 0,
        "decisions": None,
        "campaigns": None,
        "campaigns_more": 0,
        "low_cards": None,
        "low_cards_more": 0,
    }
    if deps.limits is not None and "limits" not in sample.errors:
        rows = sorted((_tenant_row(t, sample.tenants.get(t, {})) for t in visible
                       if t in sample.tenants or not access.site_wide),
                      key=lambda r: (-r["load"], r["tenant"]))
        body["tenants"], body["tenants_more"] = _cap(rows, deps.max_rows)
        if access.site_wide:
            trunks = sorted((_trunk_row(s) for s in sample.trunks),
                            key=lambda r: (-r["load"], r["trunk"]))
            body["trunks"], body["trunks_more"] = _cap(trunks, deps.max_rows)
    if deps.decisions is not None:
        body["decisions"] = _decisions(deps, None if access.site_wide else visible)
    if sample.campaigns is not None:
        campaigns = sorted((_campaign_row(c) for c in sample.campaigns if c.tenant in visible
                            or access.site_wide),
                           key=lambda r: (r["tenant"], r["campaign"]))
        body["campaigns"], body["campaigns_more"] = _cap(campaigns, deps.max_rows)
    if sample.low_cards is not None:
        cards = sorted((_card_row(c) for c in sample.low_cards if c.tenant in visible
                        or access.site_wide),
                       key=lambda r: (r["balance"], r["tenant"], r["card"]))
        body["low_cards"], body["low_cards_more"] = _cap(cards, deps.max_rows)
    return body


async def _visible_tenants(access: TenantAccess, sample: SiteSample,
                           tally: DecisionTally | None) -> set[str]:
    """Every tenant of the sample the token may see (a tenant token: at least itself)."""
    named: set[str] = set(sample.tenants)
    named.update(c.tenant for c in sample.campaigns or ())
    named.update(c.tenant for c in sample.low_cards or ())
    if tally is not None:
        named.update(tally.tenants_seen())
    if access.site_wide:
        return named
    own = access.principal.tenant
    if access.single_tenant is not None:
        return {own}
    return {own, *await access.readable(sorted(named - {own}))}


def _cap(rows: list[dict[str, Any]], most: int) -> tuple[list[dict[str, Any]], int]:
    return rows[:most], max(0, len(rows) - most)


def _load(status: ScopeStatus) -> float:
    if status.limit is None:
        return 0.0
    if status.limit == 0:
        return 1.0 if status.in_use else 0.0
    return status.in_use / status.limit


def _counter(status: ScopeStatus) -> dict[str, Any]:
    return {"in_use": status.in_use, "limit": status.limit, "hard_max": status.hard_max,
            "surcharged": status.surcharged}


def _tenant_row(tenant: str, counters: dict[str, ScopeStatus]) -> dict[str, Any]:
    full = {name: counters.get(name) or ScopeStatus(_COUNTER_KIND[name], tenant, tenant,
                                                     None, 0)
            for name in COUNTERS.values()}
    load = max(_load(s) for s in full.values())
    return {"tenant": tenant, "counters": {n: _counter(s) for n, s in full.items()},
            "load": round(load, 4),
            "at_limit": any(s.limit is not None and s.in_use >= s.limit
                            for s in full.values())}


def _trunk_row(status: ScopeStatus) -> dict[str, Any]:
    return {"trunk": status.name, **_counter(status), "cps": status.cps,
            "load": round(_load(status), 4),
            "at_limit": status.limit is not None and status.in_use >= status.limit}


def _decisions(deps: WallboardDeps, tenants: set[str] | None) -> dict[str, Any]:
    assert deps.decisions is not None
    minutes = deps.decisions.per_minute(deps.chart_minutes, tenants=tenants)
    reasons: dict[str, int] = {}
    for m in minutes:
        for reason, n in m.denied_by_reason.items():
            reasons[reason] = reasons.get(reason, 0) + n
    now = minutes[-1]
    return {
        "scope": "gateway",  # this gateway's decisions, not the whole site's
        "minutes": [{"minute": m.minute, "allowed": m.allowed, "denied": m.denied}
                    for m in minutes],
        "allowed_this_minute": now.allowed,
        "denied_this_minute": now.denied,
        "allowed_total": sum(m.allowed for m in minutes),
        "denied_total": sum(m.denied for m in minutes),
        "denied_by_reason": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def _campaign_row(c: CampaignFigures) -> dict[str, Any]:
    staffed = c.agents_ready + c.agents_ringing + c.agents_talking + c.agents_wrap_up
    dialling = c.calls_ringing + c.calls_waiting
    return {
        "tenant": c.tenant, "campaign": c.campaign_id, "mode": c.mode, "paused": c.paused,
        "abandon_rate": round(c.abandon_rate, 4), "abandon_target": c.abandon_target,
        "occupancy": round(c.occupancy, 4),
        # Lines being dialled or waiting per staffed agent, the figure max_ratio caps.
        "pacing_ratio": round(dialling / staffed, 2) if staffed else None,
        "agents": staffed, "calls": dialling + c.calls_connected,
    }


def _card_row(c: CardFigures) -> dict[str, Any]:
    return {"tenant": c.tenant, "card": c.id, "currency": c.currency, "balance": c.balance,
            "held": c.held}


__all__ = ["SCHEMA_VERSION", "snapshot"]

"""`callgate top`: the site at a glance, live in the terminal.

Calls up against each tenant's and trunk's limits (bars), and the campaigns with the
figures their pacing gateway writes every second: dials, answer rate, abandon rate
against its target, agents ready/talking/in wrap-up, occupancy. Everything is read from
Redis, so it covers every gateway of the site; for an operator on a server with no
browser (the wallboard shows the same in a browser).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from dialer.campaign import Campaign
from dialer.campaign_store import CampaignStore
from gateway.campaigns.live_stats import read_stats
from gateway.commands.live_view import add_view_options, bar, row, run_view
from gateway.redis_connect import RedisClient
from limits import LimitsService, ScopeKind, ScopeStatus, TenantStatus

MAX_ROWS = 50


@dataclass(frozen=True)
class CampaignLine:
    campaign: Campaign
    live: dict[str, Any] | None  # None: no gateway paces it now


@dataclass(frozen=True)
class TopSnapshot:
    site: str
    at: float
    calls: int
    tenants: tuple[TenantStatus, ...]
    trunks: tuple[ScopeStatus, ...]
    campaigns: tuple[CampaignLine, ...]


async def read_top(limits: LimitsService, redis: RedisClient, tenant: str | None = None,
                   now: float | None = None) -> TopSnapshot:
    settings = limits.settings
    if tenant is not None:
        names = [tenant]
    else:
        found: set[str] = set()
        for kind in ScopeKind:
            if kind.tenant_owned:
                found.update(s.tenant for s in await settings.list_scopes(kind))
        names = sorted(found)
    tenants = tuple([await settings.show_tenant(t) for t in names])
    trunks = () if tenant is not None else tuple(await settings.list_scopes(ScopeKind.TRUNK))
    store = CampaignStore(redis)
    lines = []
    for owner, cid in await store.all_ids():
        if tenant is not None and owner != tenant:
            continue
        campaign = await store.get(owner, cid)
        if campaign is not None:
            lines.append(CampaignLine(campaign, await read_stats(redis, owner, cid)))
    calls = len(await limits.leases(tenant=tenant))
    return TopSnapshot(limits.site, time.time() if now is None else now, calls, tenants,
                       trunks, tuple(lines))


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1%}"


def render_top(snap: TopSnapshot) -> RenderableType:
    head = Text(f"callgate {snap.site}  {time.strftime('%H:%M:%S', time.localtime(snap.at))}"
                f"  calls up {snap.calls}  tenants {len(snap.tenants)}  campaigns "
                f"{len(snap.campaigns)}", style="bold")
    tenants = Table(title="tenants", title_justify="left")
    for name in ("tenant", "inbound", "outbound", "total", "surcharged", "reseller"):
        tenants.add_column(name, no_wrap=True)
    for t in snap.tenants[:MAX_ROWS]:
        tenants.add_row(*row(t.tenant, bar(t.inbound.in_use, t.inbound.limit),
                        bar(t.outbound.in_use, t.outbound.limit),
                        bar(t.total.in_use, t.total.limit), str(t.surcharged),
                        t.reseller or "-"))
    parts: list[RenderableType] = [head, tenants]
    if snap.trunks:
        trunks = Table(title="trunks", title_justify="left")
        for name in ("trunk", "channels", "calls/s cap"):
            trunks.add_column(name, no_wrap=True)
        for trunk in snap.trunks[:MAX_ROWS]:
            trunks.add_row(*row(trunk.name, bar(trunk.in_use, trunk.limit),
                                "-" if trunk.cps is None else f"{trunk.cps:g}"))
        parts.append(trunks)
    campaigns = Table(title="campaigns", title_justify="left")
    for name in ("tenant", "campaign", "mode", "state", "dials", "answered", "abandon",
                 "target", "ready", "talking", "wrap-up", "occupancy", "ratio"):
        campaigns.add_column(name, no_wrap=True)
    for line in snap.campaigns[:MAX_ROWS]:
        c, s = line.campaign, line.live
        state = "paused" if c.paused else ("running" if s is not None else "not paced")
        if s is None:
            figures = ["-"] * 3 + [_pct(c.abandon_target)] + ["-"] * 4
        else:
            over = float(s.get("abandon_rate", 0.0)) > c.abandon_target
            figures = [str(s.get("dials", 0)), _pct(s.get("answer_rate")),
                       _pct(s.get("abandon_rate")) + (" !" if over else ""),
                       _pct(c.abandon_target), str(s.get("agents_ready", 0)),
                       str(s.get("agents_talking", 0)), str(s.get("agents_wrap_up", 0)),
                       _pct(s.get("occupancy"))]
        campaigns.add_row(*row(c.tenant, c.campaign_id, c.mode.value, state, *figures,
                               f"{c.max_ratio:g}"))
    parts.append(campaigns)
    return Group(*parts)


async def _snapshot(args: argparse.Namespace, limits: LimitsService,
                    redis: RedisClient) -> TopSnapshot:
    return await read_top(limits, redis, args.tenant)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = sub.add_parser("top", help="live view of calls, limits and campaigns")
    add_view_options(top)
    top.set_defaults(func=lambda args: run_view(args, _snapshot, lambda s: render_top(s)))

"""`callgate calls`: the calls holding slots right now, live in the terminal.

One row per lease (a call the gateway allowed that has not been released): tenant, age,
Asterisk server and call id, the counters it holds (surcharged ones marked `$`) and its
flags (emergency...). Read from Redis, so it shows the calls of every gateway of the
site, on a server with no browser.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from gateway.commands.live_view import add_view_options, age, row, run_view
from gateway.redis_connect import RedisClient
from limits import LeaseInfo, LimitsService

MAX_ROWS = 200


@dataclass(frozen=True)
class CallsSnapshot:
    site: str
    at: float
    tenant: str | None
    leases: tuple[LeaseInfo, ...]


async def read_calls(limits: LimitsService, site: str, tenant: str | None,
                     now: float | None = None) -> CallsSnapshot:
    leases = await limits.leases(tenant=tenant)
    ordered = sorted(leases, key=lambda x: (x.created or 0.0, x.lease_id))
    return CallsSnapshot(site, time.time() if now is None else now, tenant, tuple(ordered))


def render_calls(snap: CallsSnapshot) -> RenderableType:
    title = (f"callgate {snap.site}: {len(snap.leases)} call(s) up"
             + (f" for tenant {snap.tenant}" if snap.tenant else "")
             + time.strftime("  %H:%M:%S", time.localtime(snap.at)))
    table = Table(title=title, title_justify="left", expand=False)
    for name in ("tenant", "age", "asterisk", "call id", "holds", "flags", "lease"):
        table.add_column(name, no_wrap=name != "holds")
    for lease in snap.leases[:MAX_ROWS]:
        held = ", ".join(s + (" $" if s in lease.surcharged else "") for s in lease.scopes)
        since = "-" if lease.created is None else age(snap.at - lease.created)
        table.add_row(*row(lease.tenant, since, lease.origin or "-", lease.call_id or "-",
                           held, ",".join(sorted(lease.flags)) or "-", lease.lease_id))
    parts: list[RenderableType] = [table]
    if len(snap.leases) > MAX_ROWS:
        parts.append(Text(f"... and {len(snap.leases) - MAX_ROWS} more (narrow with "
                          "--tenant)"))
    if not snap.leases:
        parts.append(Text("no calls up"))
    return Group(*parts)


async def _snapshot(args: argparse.Namespace, limits: LimitsService,
                    redis: RedisClient) -> CallsSnapshot:
    return await read_calls(limits, limits.site, args.tenant)


def run(args: argparse.Namespace) -> int:
    return run_view(args, _snapshot, lambda s: render_calls(s))


def add_view(parser: argparse.ArgumentParser) -> None:
    """Called by the `calls` group (which has --config): without an action it shows the
    live calls."""
    add_view_options(parser, config=False)
    parser.set_defaults(func=run)


__all__ = ["CallsSnapshot", "add_view", "read_calls", "render_calls", "run"]

"""What `callgate calls` and `callgate top` share: reading a snapshot from Redis (the
system of record every gateway of the site writes to, so one view covers all of them)
and redrawing it until Ctrl-C, or printing it once (`--once`, or when stdout is not a
terminal, e.g. piped to a file)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from gateway.commands.common import add_config_option, run_with_redis
from gateway.config import Config
from gateway.redis_connect import RedisClient
from limits import EmergencyNumbers, InvalidName, LimitsService

Snapshot = Callable[[argparse.Namespace, LimitsService, RedisClient], Awaitable[Any]]
Render = Callable[[Any], RenderableType]


def add_view_options(parser: argparse.ArgumentParser, *, config: bool = True) -> None:
    if config:
        add_config_option(parser)
    parser.add_argument("--tenant", help="only this tenant")
    parser.add_argument("--once", action="store_true",
                        help="print one snapshot and exit (default when not a terminal)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between refreshes (default 1)")


def row(*cells: str) -> list[Text]:
    """Table cells as plain text: a bar's brackets are not rich markup."""
    return [Text(c) for c in cells]


def age(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def bar(used: int, limit: int | None, width: int = 10) -> str:
    """`[######----] 6/10`; no limit: the count alone."""
    if limit is None:
        return f"{used}/-"
    if limit <= 0:
        return f"[{'!' * width}] {used}/0" if used else f"[{'-' * width}] 0/0"
    filled = min(width, round(width * used / limit))
    return f"[{'#' * filled}{'-' * (width - filled)}] {used}/{limit}"


def run_view(args: argparse.Namespace, snapshot: Snapshot, render: Render) -> int:
    live_mode = not args.once and sys.stdout.isatty()
    # Printed to a file or a pipe: wide enough that no column is cut.
    console = Console() if live_mode else Console(width=240)
    if args.interval <= 0:
        print("callgate: --interval must be > 0", file=sys.stderr)
        return 2

    async def command(cfg: Config, redis: RedisClient) -> int:
        limits = LimitsService(redis, cfg.site.name,
                               emergency=EmergencyNumbers(cfg.site.emergency_numbers))
        if not live_mode:
            console.print(render(await snapshot(args, limits, redis)))
            return 0
        with Live(render(await snapshot(args, limits, redis)), console=console,
                  auto_refresh=False, screen=False) as live:
            with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
                while True:
                    await asyncio.sleep(args.interval)
                    live.update(render(await snapshot(args, limits, redis)), refresh=True)
        return 0

    with contextlib.suppress(KeyboardInterrupt):
        return run_with_redis(args, command, (InvalidName,))
    return 0

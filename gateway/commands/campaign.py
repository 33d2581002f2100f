"""`callgate campaign create|import-leads|set|show|stats`: outbound dialer campaigns.

Everything is read from and written to Redis, the system of record: a change made here
(`set --pause`, `--max-ratio`...) is picked up by the gateway pacing the campaign at its
next tick, and is kept in the campaign's audit list with who made it (`--by`, default
`cli:<user>`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import time
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from dialer.campaign import (
    AbandonWindow,
    CallingWindow,
    Campaign,
    CampaignError,
    DialMode,
    RetryDelays,
)
from dialer.campaign_store import CampaignNotFound, CampaignStore
from dialer.clock import SystemClock
from dialer.controls import SupervisorControls
from dialer.csv_import import ImportProgress, ImportReport, LeadImporter, LeadImportError
from dialer.keys import CampaignKeys
from dialer.lead_store import LeadStore
from dialer.redis_types import text
from dialer.window import Counter, RollingCounts
from gateway.campaigns.live_stats import read_stats
from gateway.commands.common import add_config_option, fail, run_with_redis
from gateway.config import Config
from gateway.redis_connect import RedisClient

ROWS_LISTED = 50  # bad rows printed by line; the rest are counted
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("campaign", help="outbound dialer campaigns")
    add_config_option(group)
    actions = group.add_subparsers(dest="campaign_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="define a new campaign")
    _campaign_arg(create)
    create.add_argument("--mode", choices=[m.value for m in DialMode], default="progressive")
    create.add_argument("--queue", default="", help="Asterisk queue of the campaign's agents")
    create.add_argument("--name", default="")
    create.add_argument("--trunk", default="", help="limits/ trunk the calls go out on")
    create.add_argument("--dial-string", default="",
                        help="channel to originate, with {number} (default: the gateway's "
                             "Local/{number}@callgate-dialer)")
    create.add_argument("--caller-id", default="")
    create.add_argument("--dial-timeout", type=int, default=30, help="seconds of ringing")
    create.add_argument("--max-attempts", type=int, default=3)
    create.add_argument("--retry", default="",
                        help="delays in seconds, e.g. busy=900,no_answer=3600,failed=1800,"
                             "machine=7200,abandoned=3600,skipped=300")
    create.add_argument("--window", default="09:00-21:00",
                        help="calling hours in the lead's own time zone, HH:MM-HH:MM")
    create.add_argument("--days", default="mon-sun", help="calling days, e.g. mon-fri,sat")
    create.add_argument("--region", default="US", help="for numbers without country code")
    create.add_argument("--fallback-timezone", default=None,
                        help="zone for leads whose number does not tell")
    create.add_argument("--max-abandon", type=_fraction, default=0.03,
                        help="abandon-rate target, 3%% or 0.03")
    create.add_argument("--abandon-window", choices=[w.value for w in AbandonWindow],
                        default="24h")
    create.add_argument("--connect-within", type=float, default=2.0,
                        help="seconds an answered call may wait for an agent")
    create.add_argument("--max-ratio", type=float, default=3.0,
                        help="calls in flight per staffed agent, at most")
    create.add_argument("--max-channels", type=int, default=30,
                        help="this campaign's share of the trunk")
    create.add_argument("--max-cps", type=float, default=5.0, help="new calls per second")
    create.add_argument("--wrap-up", type=float, default=10.0,
                        help="seconds; must match the queue's wrapuptime")
    create.add_argument("--paused", action="store_true", help="create it paused")

    imp = actions.add_parser("import-leads", help="import leads from a CSV file")
    _campaign_arg(imp)
    imp.add_argument("file", type=Path, help="CSV with a phone column (and timezone, ...)")

    set_ = actions.add_parser("set", help="change a running campaign (next pacing tick)")
    _campaign_arg(set_)
    set_.add_argument("--mode", choices=[m.value for m in DialMode])
    set_.add_argument("--max-abandon", type=_fraction, help="abandon-rate target, 3%% or 0.03")
    set_.add_argument("--max-ratio", type=float, help="calls in flight per staffed agent")
    pause = set_.add_mutually_exclusive_group()
    pause.add_argument("--pause", action="store_true")
    pause.add_argument("--resume", action="store_true")
    set_.add_argument("--by", default="", help="who makes the change (audit; default cli:USER)")

    show = actions.add_parser("show", help="a campaign's settings, leads and recent changes "
                                           "(without CAMPAIGN: the tenant's campaigns)")
    show.add_argument("campaign", nargs="?")
    show.add_argument("--tenant", required=True)

    stats = actions.add_parser("stats", help="live figures from the gateway pacing it")
    _campaign_arg(stats)
    stats.add_argument("--json", action="store_true", help="the raw snapshot as JSON")
    group.set_defaults(func=_run)


def _campaign_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("campaign", help="campaign id (A-Z a-z 0-9 _ . -)")
    p.add_argument("--tenant", required=True, help="the tenant the campaign belongs to")


def _fraction(raw: str) -> float:
    """`3%` or `0.03`; a bare number above 0.5 is refused as ambiguous."""
    text_ = raw.strip()
    try:
        if text_.endswith("%"):
            return float(text_[:-1]) / 100.0
        value = float(text_)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a rate: write 3% or 0.03") from None
    if value > 0.5:
        raise argparse.ArgumentTypeError(f"{raw!r} is ambiguous: write 3% or 0.03")
    return value


def _run(args: argparse.Namespace) -> int:
    handlers = {"create": _create, "import-leads": _import, "set": _set, "show": _show,
                "stats": _stats}
    handler = handlers[args.campaign_command]

    async def command(cfg: Config, redis: RedisClient) -> int:
        try:
            return await handler(args, redis)
        except CampaignNotFound as exc:
            return fail(str(exc), 1)

    return run_with_redis(args, command, (CampaignError,))


# -- create ------------------------------------------------------------------------------


def _window(raw: str, days: str) -> CallingWindow:
    start, sep, end = raw.partition("-")
    if not sep:
        raise CampaignError(f"--window {raw!r}: write HH:MM-HH:MM")
    return CallingWindow(_hhmm(start), _hhmm(end), _weekdays(days))


def _hhmm(raw: str) -> clock_time:
    hh, _, mm = raw.strip().partition(":")
    try:
        return clock_time(int(hh), int(mm or 0))
    except ValueError:
        raise CampaignError(f"{raw!r} is not a time of day (HH:MM)") from None


def _weekdays(raw: str) -> frozenset[int]:
    out: set[int] = set()
    for part in raw.lower().split(","):
        first, _, last = part.strip().partition("-")
        try:
            a = _DAYS.index(first[:3])
            b = _DAYS.index(last[:3]) if last else a
        except ValueError:
            raise CampaignError(f"--days {raw!r}: use mon..sun, e.g. mon-fri,sat") from None
        if b < a:
            raise CampaignError(f"--days {part!r}: the range runs backwards")
        out.update(range(a, b + 1))
    return frozenset(out)


def _retry(raw: str) -> RetryDelays:
    if not raw:
        return RetryDelays()
    values: dict[str, int] = {}
    for part in raw.split(","):
        key, sep, value = part.partition("=")
        name = f"{key.strip()}_s"
        if not sep or name not in RetryDelays.__dataclass_fields__:
            raise CampaignError(f"--retry {part!r}: expected busy|no_answer|failed|machine|"
                                "abandoned|skipped=SECONDS")
        try:
            values[name] = int(value)
        except ValueError:
            raise CampaignError(f"--retry {part!r}: seconds must be a whole number") from None
    return RetryDelays(**values)


async def _create(args: argparse.Namespace, redis: RedisClient) -> int:
    store = CampaignStore(redis)
    if await store.get(args.tenant, args.campaign) is not None:
        return fail(f"campaign {args.campaign!r} of tenant {args.tenant!r} exists; change it "
                    "with `callgate campaign set`", 1)
    mode = DialMode(args.mode)
    if mode is not DialMode.PREVIEW and not args.queue:
        return fail(f"a {mode.value} campaign needs --queue (its agents' Asterisk queue)")
    if args.dial_string and "{number}" not in args.dial_string:
        return fail("--dial-string must contain {number}")
    campaign = Campaign(
        args.tenant, args.campaign, mode=mode, name=args.name, trunk=args.trunk,
        dial_string=args.dial_string, caller_id=args.caller_id, agent_queue=args.queue,
        dial_timeout_s=args.dial_timeout, max_attempts=args.max_attempts,
        retry=_retry(args.retry), window=_window(args.window, args.days),
        default_region=args.region.upper(), fallback_timezone=args.fallback_timezone,
        abandon_target=args.max_abandon, abandon_window=AbandonWindow(args.abandon_window),
        connect_within_s=args.connect_within, max_ratio=args.max_ratio,
        max_channels=args.max_channels, max_cps=args.max_cps, wrap_up_s=args.wrap_up,
        paused=args.paused)
    await store.put(campaign)
    print(f"created campaign {campaign.campaign_id} (tenant {campaign.tenant})")
    print(_describe(campaign))
    return 0


# -- import-leads ------------------------------------------------------------------------


def _count_rows(path: Path) -> int | None:
    """Data rows (lines after the header), for the progress bar; None if unreadable."""
    lines, last = 0, b"\n"
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:
        return None
    if last != b"\n":
        lines += 1  # no newline after the last row
    return max(0, lines - 1)


async def _import(args: argparse.Namespace, redis: RedisClient) -> int:
    campaign = await CampaignStore(redis).require(args.tenant, args.campaign)
    path: Path = args.file
    total = _count_rows(path)
    console = Console(stderr=True)
    importer = LeadImporter(LeadStore(redis), SystemClock().now)
    with Progress(TextColumn("importing {task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[bad]} bad"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("import", total=total, name=path.name, bad=0)

        def on_progress(p: ImportProgress) -> None:
            progress.update(task, completed=p.rows, bad=p.rejected)

        try:
            report = await importer.import_leads(campaign, path, on_progress)
        except LeadImportError as exc:
            return fail(str(exc), 1)
        progress.update(task, completed=report.rows, total=report.rows)
    _print_report(report)
    return 1 if report.rows and not (report.imported or report.merged) else 0


def _print_report(r: ImportReport) -> None:
    print(f"{r.rows} rows: {r.imported} imported, {r.merged} duplicates merged, "
          f"{r.rejected} rejected ({r.seconds:.1f} s)")
    for err in r.errors[:ROWS_LISTED]:
        detail = f" ({err.detail})" if err.detail else ""
        print(f"  line {err.line}: {err.reason}{detail}")
    hidden = r.rejected - min(len(r.errors), ROWS_LISTED)
    if hidden > 0:
        print(f"  ... and {hidden} more rejected rows")
    for dup in r.duplicates[:10]:
        where = f"line {dup.merged_into_line}" if dup.merged_into_line > 0 else "a lead"
        print(f"  line {dup.line}: {dup.phone} merged into {where} already imported")
    if r.merged > 10:
        print(f"  ... and {r.merged - 10} more duplicates")


# -- set ---------------------------------------------------------------------------------


async def _set(args: argparse.Namespace, redis: RedisClient) -> int:
    if not (args.mode or args.max_abandon is not None or args.max_ratio is not None
            or args.pause or args.resume):
        return fail("nothing to change: give --mode, --max-abandon, --max-ratio, --pause "
                    "or --resume")
    store = CampaignStore(redis)
    await store.require(args.tenant, args.campaign)
    controls = SupervisorControls(redis, store, SystemClock())
    by = args.by or f"cli:{getpass.getuser()}"
    t, c = args.tenant, args.campaign
    campaign: Campaign | None = None
    if args.mode:
        campaign = await controls.set_mode(t, c, args.mode, by=by)
    if args.max_abandon is not None:
        campaign = await controls.set_abandon_target(t, c, args.max_abandon, by=by)
    if args.max_ratio is not None:
        campaign = await controls.set_max_ratio(t, c, args.max_ratio, by=by)
    if args.pause:
        campaign = await controls.pause(t, c, by=by)
    if args.resume:
        campaign = await controls.resume(t, c, by=by)
    assert campaign is not None
    print(_describe(campaign))
    return 0


# -- show / stats ------------------------------------------------------------------------


def _describe(c: Campaign) -> str:
    w = c.window
    days = ",".join(_DAYS[d] for d in sorted(w.weekdays))
    r = c.retry
    dial = c.dial_string or "Local/{number}@<dial context>"
    return "\n".join([
        f"campaign {c.campaign_id} (tenant {c.tenant}){' ' + repr(c.name) if c.name else ''}",
        f"  mode {c.mode.value}{' PAUSED' if c.paused else ''}, queue {c.agent_queue or '-'}, "
        f"trunk {c.trunk or '-'}",
        f"  dial {dial}, caller id {c.caller_id or '-'}, ring {c.dial_timeout_s} s",
        f"  window {w.start:%H:%M}-{w.end:%H:%M} {days} (lead's time zone), region "
        f"{c.default_region}, fallback zone {c.fallback_timezone or '-'}",
        f"  attempts {c.max_attempts}; retry after busy {r.busy_s} s, no answer "
        f"{r.no_answer_s} s, failed {r.failed_s} s, machine {r.machine_s} s, abandoned "
        f"{r.abandoned_s} s",
        f"  abandon target {c.abandon_target:.1%} over {c.abandon_window.value}, connect within "
        f"{c.connect_within_s:g} s, max ratio {c.max_ratio:g}, {c.max_channels} channels, "
        f"{c.max_cps:g} calls/s, wrap-up {c.wrap_up_s:g} s",
    ])


async def _show(args: argparse.Namespace, redis: RedisClient) -> int:
    store = CampaignStore(redis)
    if not args.campaign:
        campaigns = await store.list(args.tenant)
        if not campaigns:
            print(f"tenant {args.tenant} has no campaigns")
        for c in campaigns:
            state = "paused" if c.paused else "active"
            print(f"{c.campaign_id:<24} {c.mode.value:<12} {state:<7} queue "
                  f"{c.agent_queue or '-'}")
        return 0
    campaign = await store.require(args.tenant, args.campaign)
    print(_describe(campaign))
    keys = CampaignKeys(campaign.tenant, campaign.campaign_id)
    leads = LeadStore(redis)
    total = await leads.count(keys)
    now = time.time()
    due = await leads.due_count(keys, now)
    open_ = int(await redis.zcard(keys.due))
    print(f"  leads {total}: {due} due now, {open_ - due} due later, "
          f"{total - open_} closed or in a call")
    history = await SupervisorControls(redis, store, SystemClock()).history(
        campaign.tenant, campaign.campaign_id, limit=5)
    if history:
        print("  recent changes:")
    for ch in history:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ch.at))
        print(f"    {at} {ch.by}: {ch.field} {ch.old} -> {ch.new}")
    return 0


async def _stats(args: argparse.Namespace, redis: RedisClient) -> int:
    campaign = await CampaignStore(redis).require(args.tenant, args.campaign)
    live = await read_stats(redis, campaign.tenant, campaign.campaign_id)
    if args.json:
        print(json.dumps(live if live is not None else await _window_figures(redis, campaign)))
        return 0
    if live is None:
        w = await _window_figures(redis, campaign)
        print(f"campaign {campaign.campaign_id}: no gateway is pacing it right now")
        print(f"  over {w['abandon_window']}: {w['dials']} dials, {w['answers']} answered by a "
              f"person, {w['abandoned']} abandoned ({w['abandon_rate']:.1%}, target "
              f"{campaign.abandon_target:.1%})")
        return 0
    print(_live_text(live))
    return 0


async def _window_figures(redis: RedisClient, campaign: Campaign) -> dict[str, Any]:
    """The abandon-window counters, which Redis keeps whether or not a gateway runs."""
    raw = await redis.hgetall(CampaignKeys(campaign.tenant, campaign.campaign_id).window)
    counts = RollingCounts(campaign.abandon_window)
    counts.load((text(k), int(text(v))) for k, v in raw.items())
    now = time.time()
    live = counts.total(Counter.LIVE, now)
    abandoned = counts.total(Counter.ABANDONED, now)
    return {"tenant": campaign.tenant, "campaign_id": campaign.campaign_id, "running": False,
            "abandon_window": campaign.abandon_window.value,
            "dials": counts.total(Counter.DIALS, now), "answers": live,
            "abandoned": abandoned, "abandon_rate": abandoned / live if live else 0.0}


def _live_text(s: dict[str, Any]) -> str:
    age = max(0.0, time.time() - float(s.get("at", 0.0)))
    state = "PAUSED" if s.get("paused") else "running"
    return "\n".join([
        f"campaign {s['campaign_id']} (tenant {s['tenant']}): {s['mode']} {state}, "
        f"figures {age:.0f} s old, pacing limited by {s['pacing_limited_by']}",
        f"  calls: {s['calls_ringing']} ringing, {s['calls_waiting']} waiting for an agent, "
        f"{s['calls_connected']} with an agent",
        f"  agents: {s['agents_ready']} ready, {s['agents_ringing']} ringing, "
        f"{s['agents_talking']} talking, {s['agents_wrap_up']} wrap-up, "
        f"{s['agents_paused']} paused, {s['agents_offline']} offline",
        f"  over {s['abandon_window']}: {s['dials']} dials, {s['answers']} answered by a "
        f"person ({s['answer_rate']:.1%}), {s['abandoned']} abandoned "
        f"({s['abandon_rate']:.1%}, target {s['abandon_target']:.1%})",
        f"  occupancy {s['occupancy']:.1%}, {s['talk_min_per_agent_hour']:.1f} talk min per "
        f"agent-hour",
    ])

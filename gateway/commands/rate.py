"""`callgate rate import|show|list`: rate plans from CSV (see prepaid.rateplan_csv for the
columns). A bad row is reported with its line number and skipped; the good rows are kept.
Plan-wide settings (currency, time bands, taxes, bundle, warning) come from a TOML or JSON
file (`--settings`), or just `--currency` for a plan without bands or taxes."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from gateway.commands.common import add_config_option, fail, run_with_redis
from gateway.commands.prepaid_common import iso, prepaid_cli
from gateway.config import Config
from gateway.redis_connect import RedisClient
from prepaid.errors import BadInput, PrepaidError
from prepaid.rateplan_csv import parse_file
from prepaid.rating import PlanSettings

MAX_ERRORS_SHOWN = 50


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rate = sub.add_parser("rate", help="rate plans")
    add_config_option(rate)
    actions = rate.add_subparsers(dest="rate_command", required=True, metavar="ACTION")
    imp = actions.add_parser("import", help="import (replace) a plan from CSV")
    imp.add_argument("plan")
    imp.add_argument("file", help="CSV: prefix,destination,rate[,connection_fee,increments,...]")
    imp.add_argument("--settings", help="TOML or JSON plan settings (bands, taxes, bundle ...)")
    imp.add_argument("--currency", help="without --settings: the plan's currency")
    imp.add_argument("--warn-seconds", type=int, help="warning prompt this long before zero")
    imp.add_argument("--warn-to", choices=("caller", "callee", "both"))
    imp.add_argument("--dry-run", action="store_true", help="check the file, import nothing")
    show = actions.add_parser("show", help="a plan's version and size")
    show.add_argument("plan")
    show.add_argument("--lookup", help="which row a number matches")
    actions.add_parser("list", help="plan names")
    rate.set_defaults(func=_run)


def _settings(args: argparse.Namespace) -> PlanSettings:
    raw: dict[str, Any] = {}
    if args.settings:
        path = Path(args.settings)
        text = path.read_text(encoding="utf-8")
        try:
            raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise BadInput(f"{path}: {exc}") from None
    if args.currency:
        raw["currency"] = args.currency.upper()
    if args.warn_seconds is not None:
        raw["warn_seconds"] = args.warn_seconds
    if args.warn_to:
        raw["warn_to"] = args.warn_to
    if "currency" not in raw:
        raise BadInput("give --currency or a --settings file with a currency")
    return PlanSettings.from_config(raw)


def _run(args: argparse.Namespace) -> int:
    async def command(cfg: Config, redis: RedisClient) -> int:
        pp = prepaid_cli(cfg, redis)
        if args.rate_command == "list":
            for name in await pp.plans.names():
                info = await pp.plans.info(name)
                print(f"{name}  v{info.version}  {info.rows} prefixes  {info.currency}")
            return 0
        if args.rate_command == "show":
            info = await pp.plans.info(args.plan)
            print(f"plan {info.name}: version {info.version}, {info.rows} prefixes, "
                  f"{info.currency}, imported {iso(info.imported_ms)}")
            if args.lookup:
                plan = await pp.plans.load(args.plan)
                entry = plan.lookup(args.lookup)
                print(f"{args.lookup}: " + (f"prefix {entry.prefix} {entry.destination}"
                                            if entry else "no route"))
            return 0
        settings = _settings(args)
        parsed = parse_file(Path(args.file), settings)
        for err in parsed.errors[:MAX_ERRORS_SHOWN]:
            print(f"{args.file}:{err.line}: {err.reason}", file=sys.stderr)
        if len(parsed.errors) > MAX_ERRORS_SHOWN:
            print(f"... and {len(parsed.errors) - MAX_ERRORS_SHOWN} more bad rows",
                  file=sys.stderr)
        if not parsed.entries:
            return fail(f"{args.file}: no usable row; plan {args.plan} left unchanged")
        if args.dry_run:
            print(f"{args.file}: {len(parsed.entries)} prefixes ok, {len(parsed.errors)} "
                  "bad rows (dry run, nothing imported)")
            return 0
        info = await pp.plans.save(args.plan, settings, parsed.entries)
        print(f"plan {info.name}: version {info.version}, {info.rows} prefixes imported, "
              f"{len(parsed.errors)} bad rows skipped")
        return 0

    return run_with_redis(args, command, (PrepaidError, OSError))

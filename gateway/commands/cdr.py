"""`callgate cdr export --from --to [--format csv|jsonl] [--tenant] [--out]`: the prepaid
CDRs of calls that ended in [from, to), from the Redis stream, in end-time order."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from gateway.commands.common import add_config_option, run_with_redis
from gateway.commands.prepaid_common import open_output, parse_when, prepaid_cli
from gateway.config import Config
from gateway.redis_connect import RedisClient
from prepaid.errors import BadInput, PrepaidError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cdr = sub.add_parser("cdr", help="prepaid call records")
    add_config_option(cdr)
    actions = cdr.add_subparsers(dest="cdr_command", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="CDRs of calls ended in a time range")
    export.add_argument("--from", dest="from_", required=True,
                        help="2027-01-01, 2027-01-01T08:00, an epoch, or -7d")
    export.add_argument("--to", default="0s", help="end (exclusive); default now")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--tenant", help="only this tenant's calls")
    export.add_argument("--out", help="write here instead of stdout")
    cdr.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    with open_output(args.out) as out:
        return _export(args, out)


def _export(args: argparse.Namespace, out: TextIO) -> int:
    async def command(cfg: Config, redis: RedisClient) -> int:
        start, end = parse_when(args.from_), parse_when(args.to)
        if end <= start:
            raise BadInput("--to must be after --from")
        store = prepaid_cli(cfg, redis).cdrs
        n = await store.export(start, end, out, args.format, args.tenant)
        print(f"{n} CDRs", file=sys.stderr)
        return 0

    return run_with_redis(args, command, (PrepaidError, OSError))

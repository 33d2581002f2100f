"""`callgate voucher create|redeem`: single-use codes that add their value to a card.

`create` prints the codes as CSV (stdout or `--out`): Redis keeps only their keyed hash.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from gateway.commands.common import add_config_option, fail, run_with_redis
from gateway.commands.prepaid_common import open_output, parse_when, prepaid_cli
from gateway.config import Config
from gateway.redis_connect import RedisClient
from prepaid.errors import PrepaidError
from prepaid.money import format_amount, parse_amount
from prepaid.vouchers import RedeemStatus

_WHY = {
    RedeemStatus.ALREADY_REDEEMED: "already redeemed onto this card",
    RedeemStatus.USED: "already used",
    RedeemStatus.UNKNOWN: "no such voucher",
    RedeemStatus.EXPIRED: "expired",
    RedeemStatus.WRONG_TENANT: "belongs to another tenant",
    RedeemStatus.WRONG_CURRENCY: "is in another currency than the card",
    RedeemStatus.CARD_REFUSED: "the card is missing, blocked or expired",
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    voucher = sub.add_parser("voucher", help="top-up vouchers")
    add_config_option(voucher)
    actions = voucher.add_subparsers(dest="voucher_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="a batch of voucher codes (CSV out)")
    create.add_argument("--count", type=int, required=True)
    create.add_argument("--value", required=True, help="e.g. 5.00")
    create.add_argument("--currency", required=True)
    create.add_argument("--tenant", default="", help="only this tenant's cards may redeem")
    create.add_argument("--expires", help="180d from now, or 2027-06-30")
    create.add_argument("--out", help="write the CSV here instead of stdout")
    redeem = actions.add_parser("redeem", help="add a voucher's value to a card")
    redeem.add_argument("code")
    redeem.add_argument("--card", required=True)
    redeem.add_argument("--tenant")
    voucher.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    with open_output(getattr(args, "out", None)) as out:
        return _command(args, out)


def _command(args: argparse.Namespace, out: TextIO) -> int:
    async def command(cfg: Config, redis: RedisClient) -> int:
        pp = prepaid_cli(cfg, redis)
        vouchers = pp.vouchers(redis)
        if args.voucher_command == "create":
            currency = args.currency.upper()
            issued = await vouchers.create_batch(
                args.count, parse_amount(args.value, currency), currency, args.tenant,
                parse_when(args.expires) if args.expires else None,
            )
            issued.write_csv(out)
            print(f"batch {issued.batch_id}: {len(issued.codes)} vouchers of {args.value} "
                  f"{currency}", file=sys.stderr)
            return 0
        res = await vouchers.redeem(args.code, args.card, args.tenant)
        card = await pp.cards.get(args.card)
        if res.status is not RedeemStatus.OK:
            return fail(f"voucher refused: {_WHY[res.status]}", 1)
        print(f"card {args.card}: +{format_amount(res.amount, card.currency)} {card.currency}, "
              f"balance {format_amount(res.balance, card.currency)} {card.currency}")
        return 0

    return run_with_redis(args, command, (PrepaidError, OSError))

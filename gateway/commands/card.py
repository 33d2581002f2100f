"""`callgate card create|sell|show|topup|block|unblock|unlock|list|bind|unbind`.

`create` prints the printer's CSV (card, pin, value ...) on stdout or `--out FILE`: the
only place PINs ever appear in clear (Redis keeps their keyed hash). A progress bar goes
to stderr, so `callgate card create --batch 100000 ... > cards.csv` shows it.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from gateway.commands.common import add_config_option, run_with_redis
from gateway.commands.prepaid_common import iso, open_output, parse_when, prepaid_cli
from gateway.config import Config
from gateway.redis_connect import RedisClient
from prepaid.batches import BatchService, BatchSpec
from prepaid.cards import Card
from prepaid.control import check_warn_target
from prepaid.errors import PrepaidError
from prepaid.money import format_amount, parse_amount


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    card = sub.add_parser("card", help="prepaid calling cards")
    add_config_option(card)
    actions = card.add_subparsers(dest="card_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="a batch of cards (CSV with PINs out)")
    create.add_argument("--batch", type=int, required=True, metavar="N", help="how many cards")
    create.add_argument("--value", required=True, help="money on each card, e.g. 10.00")
    create.add_argument("--currency", required=True, help="ISO code, e.g. EUR")
    create.add_argument("--plan", required=True, help="rate plan (callgate rate import)")
    create.add_argument("--tenant", required=True, help="the call shop selling them")
    create.add_argument("--expires", help="absolute expiry: 180d from now, or 2027-06-30")
    create.add_argument("--valid-days", type=int, default=0,
                        help="days of validity counted from the first call")
    create.add_argument("--allow", default="", help="destination prefixes allowed, comma-separated")
    create.add_argument("--warn-to", help="warning prompt to caller, callee or both")
    create.add_argument("--pin-length", type=int, default=6)
    create.add_argument("--number-length", type=int, default=12)
    create.add_argument("--sold", action="store_true", help="usable at once (no `card sell`)")
    create.add_argument("--out", help="write the CSV here instead of stdout")

    for name, what in (("sell", "mark a card sold (it may call)"),
                       ("show", "a card's state, balance and live calls"),
                       ("unblock", "return a blocked card to use"),
                       ("unlock", "lift a PIN lock-out")):
        p = actions.add_parser(name, help=what)
        p.add_argument("card")
        p.add_argument("--tenant", help="refuse a card of another tenant")
    block = actions.add_parser("block", help="block a card (its calls stop at next debit)")
    block.add_argument("card")
    block.add_argument("--reason", default="")
    block.add_argument("--tenant")
    topup = actions.add_parser("topup", help="add money (once per reference)")
    topup.add_argument("card")
    topup.add_argument("amount", help="e.g. 5.00, in the card's currency")
    topup.add_argument("--reference", required=True, help="receipt number: a retry is a no-op")
    topup.add_argument("--tenant")
    lst = actions.add_parser("list", help="a tenant's cards")
    lst.add_argument("--tenant", required=True)
    bind = actions.add_parser("bind", help="charge a booth phone's calls to a card")
    bind.add_argument("card")
    bind.add_argument("--device", required=True, help="booth phone, e.g. booth-3")
    bind.add_argument("--hours", type=float, default=4.0, help="binding lasts this long")
    unbind = actions.add_parser("unbind", help="end a booth's binding")
    unbind.add_argument("--device", required=True)
    card.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    with open_output(getattr(args, "out", None)) as out:
        return _command(args, out)


def _command(args: argparse.Namespace, out: TextIO) -> int:
    async def command(cfg: Config, redis: RedisClient) -> int:
        pp = prepaid_cli(cfg, redis)
        c = args.card_command
        if c == "create":
            return await _create(args, pp.batches(redis), out)
        if c == "list":
            cursor, n = 0, 0
            while True:
                cursor, cards = await pp.cards.list_by_tenant(args.tenant, cursor, 500)
                for card in cards:
                    print(_line(card))
                    n += 1
                if cursor == 0:
                    break
            print(f"{n} cards", file=sys.stderr)
            return 0
        if c == "unbind":
            await pp.cards.unbind_booth(args.device)
            print(f"booth {args.device}: unbound")
            return 0
        if c == "bind":
            await pp.cards.bind_booth(args.device, args.card, int(args.hours * 3600))
            print(f"booth {args.device}: calls charged to card {args.card} "
                  f"for {args.hours:g} h")
            return 0
        if c == "unlock":
            await pp.cards.get(args.card, args.tenant)
            await pp.pins(redis).unlock(args.card)
            print(f"card {args.card}: PIN lock-out lifted")
            return 0
        if c == "topup":
            card = await pp.cards.get(args.card, args.tenant)
            amount = parse_amount(args.amount, card.currency)
            res = await pp.cards.topup(args.card, amount, args.reference, tenant=args.tenant)
            word = "credited" if res.applied else "already credited (same reference)"
            print(f"card {args.card}: {word}; balance "
                  f"{format_amount(res.balance, card.currency)} {card.currency}")
            return 0
        if c == "sell":
            card = await pp.cards.sell(args.card, args.tenant)
        elif c == "block":
            card = await pp.cards.block(args.card, args.reason, args.tenant)
        elif c == "unblock":
            card = await pp.cards.unblock(args.card, args.tenant)
        else:
            card = await pp.cards.get(args.card, args.tenant)
            _show(card, await pp.cards.live_sessions(card.id))
            return 0
        print(_line(card))
        return 0

    return run_with_redis(args, command, (PrepaidError, OSError))


async def _create(args: argparse.Namespace, batches: BatchService, out: TextIO) -> int:
    spec = BatchSpec(
        count=args.batch, value=parse_amount(args.value, args.currency.upper()),
        currency=args.currency.upper(), plan=args.plan, tenant=args.tenant,
        expires_at=parse_when(args.expires) if args.expires else None,
        valid_days=args.valid_days, number_length=args.number_length,
        pin_length=args.pin_length,
        allow=tuple(p.strip() for p in args.allow.split(",") if p.strip()),
        warn_to=check_warn_target(args.warn_to) if args.warn_to else None, sold=args.sold,
    )
    spec.check()
    with Progress("cards", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("create", total=spec.count)
        issued = await batches.create(spec, lambda done, _t: bar.update(task, completed=done))
    issued.write_csv(out)
    print(f"batch {issued.batch_id}: {len(issued.cards)} cards of "
          f"{args.value} {spec.currency} on plan {spec.plan}"
          + (f", written to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


def _line(card: Card) -> str:
    return (f"{card.id}  {card.status.value:<8} {format_amount(card.balance, card.currency):>10} "
            f"{card.currency}  plan {card.plan}  tenant {card.tenant}")


def _show(card: Card, live: list[str]) -> None:
    print(_line(card))
    rows = [
        ("held by live calls", f"{format_amount(card.held, card.currency)} {card.currency}"),
        ("batch", card.batch or "-"), ("created", iso(card.created_ms)),
        ("sold", iso(card.sold_ms)), ("first call", iso(card.activated_ms)),
        ("expires", iso(card.expires_ms) if card.expires_ms else "never"),
        ("valid days after first call", str(card.valid_days or "-")),
        ("allowed prefixes", ",".join(card.allow) or "all"),
        ("warning to", card.warn_to or "plan default"),
        ("live calls", str(len(live))),
    ]
    if card.blocked_reason:
        rows.append(("blocked because", card.blocked_reason))
    for k, v in rows:
        print(f"  {k}: {v}")


"""`callgate token create|list|revoke`: bearer tokens of the HTTP API and wallboard.

The token is printed once at creation; only its hash is kept, so a lost token is revoked
and replaced, never recovered.
"""

from __future__ import annotations

import argparse

from gateway.api import InvalidToken, create_token, list_tokens, revoke_token
from gateway.commands.common import add_config_option, fail, run_with_redis
from gateway.config import Config
from gateway.redis_connect import RedisClient


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="API tokens")
    add_config_option(token)
    actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a token (printed once)")
    create.add_argument("--tenant", required=True, help="a tenant, or '*' for site-wide")
    create.add_argument("--role", required=True,
                        choices=("admin", "operator", "supervisor", "reseller"))
    create.add_argument("--label", default="", help="who or what holds it")
    actions.add_parser("list", help="tokens (ids, roles, tenants; never secrets)")
    revoke = actions.add_parser("revoke", help="revoke a token by id or value")
    revoke.add_argument("token")
    token.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    async def command(cfg: Config, redis: RedisClient) -> int:
        site = cfg.site.name
        if args.token_command == "create":
            print(await create_token(redis, site, args.tenant, args.role, label=args.label))
        elif args.token_command == "list":
            for info in await list_tokens(redis, site):
                print(f"{info.token_id}  {info.role:<10} tenant {info.tenant:<16} {info.label}")
        elif not await revoke_token(redis, site, args.token):
            return fail(f"no token {args.token!r}", 1)
        return 0

    return run_with_redis(args, command, (InvalidToken,))

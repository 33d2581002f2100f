"""What every CLI group shares: reading the config an operator points at."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.exceptions import RedisError

from gateway.config import Config, ConfigError, load_config, parse_config
from gateway.redis_connect import RedisClient, connect_redis
from limits import BackendUnavailable

DEFAULT_CONFIG = "/etc/callgate/callgate.toml"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help=f"daemon config to read Redis and site from (default {DEFAULT_CONFIG} if present)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    """The given config, else the system one if present, else built-in defaults.

    Raises ConfigError with the operator-facing message.
    """
    if args.config:
        return load_config(Path(args.config))
    if Path(DEFAULT_CONFIG).exists():
        return load_config(Path(DEFAULT_CONFIG))
    return parse_config("", "<defaults>")


def fail(message: str, code: int = 2) -> int:
    print(f"callgate: {message}", file=sys.stderr)
    return code




def redis_url_of(cfg: Config) -> str:
    """The Redis the daemon of this config uses: its url, or its owned server's socket."""
    if cfg.redis.url:
        return cfg.redis.url
    return f"unix://{Path(cfg.daemon.state_dir).resolve() / 'redis' / 'redis.sock'}"


def open_redis(cfg: Config) -> RedisClient:
    return connect_redis(redis_url_of(cfg), cluster=cfg.redis.cluster,
                         socket_timeout=cfg.redis.socket_timeout,
                         sentinel_master=cfg.redis.sentinel_master or None)


RedisCommand = Callable[[Config, RedisClient], Awaitable[int]]


def run_with_redis(args: argparse.Namespace, command: RedisCommand,
                   usage_errors: tuple[type[Exception], ...] = ()) -> int:
    """Read the config, run `command` with a Redis client, close it; map failures to one
    clear line: a bad config or `usage_errors` exit 2, Redis unreachable exits 1."""
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        return fail(str(exc))

    async def main() -> int:
        redis = open_redis(cfg)
        try:
            return await command(cfg, redis)
        finally:
            await redis.aclose()

    try:
        return asyncio.run(main())
    except (RedisError, BackendUnavailable) as exc:
        return fail(f"Redis is not reachable: {exc}", 1)
    except usage_errors as exc:
        return fail(str(exc))


__all__ = ["ConfigError", "add_config_option", "config_from_args", "fail", "open_redis",
           "redis_url_of", "run_with_redis"]

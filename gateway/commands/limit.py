"""`callgate limit set|show`: concurrency limits, effective for the next call.

Writes go straight to Redis (the system of record), so every gateway of the site sees a
change at once; lowering a limit below current use never cuts a call, it only refuses
new ones until use falls below it.
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.commands.common import add_config_option, fail, run_with_redis
from gateway.config import Config
from gateway.redis_connect import RedisClient
from hw_profiles import ProfileLoadError, load_profiles
from limits import (
    EmergencyNumbers,
    InvalidLimit,
    InvalidName,
    LimitsService,
    ScopeStatus,
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    limit = sub.add_parser("limit", help="concurrent-call limits")
    add_config_option(limit)
    actions = limit.add_subparsers(dest="limit_command", required=True, metavar="ACTION")

    set_ = actions.add_parser("set", help="set a limit (effective for the next call)")
    kinds = set_.add_subparsers(dest="kind", required=True, metavar="KIND")
    tenant = kinds.add_parser("tenant", help="a tenant's inbound/outbound/total calls")
    tenant.add_argument("name")
    for counter in ("inbound", "outbound", "total"):
        tenant.add_argument(f"--{counter}", type=_limit, default=UNSET,
                            help="calls (or 'none' for unlimited)")
    tenant.add_argument("--overflow", choices=("refuse", "surcharge"))
    tenant.add_argument("--hard-max", type=_limit,
                        help="with --overflow surcharge: the most calls allowed at all")
    tenant.add_argument("--reseller", help="count this tenant's calls against a reseller too")
    trunk = kinds.add_parser("trunk", help="a trunk's channels and calls per second")
    trunk.add_argument("name")
    trunk.add_argument("--channels", type=_limit)
    trunk.add_argument("--profile", help="take the channels from a hardware profile")
    trunk.add_argument("--cps", type=float, help="new calls per second")
    for kind, what in (("number", "channels"), ("pool", "size"), ("device", "appearances")):
        p = kinds.add_parser(kind, help=f"a {kind}'s {what}")
        p.add_argument("name")
        p.add_argument("--tenant", required=True, help=f"the tenant the {kind} belongs to")
        p.add_argument(f"--{what}", type=_limit, required=True, dest="value")

    show = actions.add_parser("show", help="limit, in use and surcharged calls")
    show.add_argument("kind", nargs="?",
                      choices=("tenant", "trunk", "number", "pool", "device"))
    show.add_argument("name", nargs="?")
    show.add_argument("--tenant", help="owner of a number, pool or device")
    limit.set_defaults(func=_run)


UNSET: Any = object()  # an option not given, as opposed to 'none' (unlimited)


def _limit(text: str) -> int | None:
    if text.lower() in ("none", "unlimited", "-"):
        return None
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("a limit is 0 or more (or 'none')")
    return value


def _run(args: argparse.Namespace) -> int:
    async def command(cfg: Config, redis: RedisClient) -> int:
        limits = LimitsService(redis, cfg.site.name,
                               emergency=EmergencyNumbers(cfg.site.emergency_numbers))
        if args.limit_command == "set":
            return await _set(args, limits, cfg.daemon.hw_profiles_dir)
        return await _show(args, limits)

    return run_with_redis(args, command, (InvalidLimit, InvalidName, ValueError))


async def _set(args: argparse.Namespace, limits: LimitsService, hw_dir: str) -> int:
    s = limits.settings
    if args.kind == "tenant":
        given = {c: getattr(args, c) for c in ("inbound", "outbound", "total")
                 if getattr(args, c) is not UNSET}
        if args.reseller is not None:
            await s.set_reseller(args.name, args.reseller or None)
        for counter, value in given.items():
            await s.set_tenant_limit(args.name, counter, value, hard_max=args.hard_max)
        if args.overflow:
            await s.set_tenant_policy(args.name, args.overflow)
        print(_tenant_line(await s.show_tenant(args.name)))
    elif args.kind == "trunk":
        channels = args.channels
        if args.profile:
            from pathlib import Path

            try:
                profiles = load_profiles([Path(hw_dir)] if hw_dir else [])
            except ProfileLoadError as exc:
                return fail(str(exc), 1)
            profile = profiles.get(args.profile)
            if profile is None:
                return fail(f"no hardware profile {args.profile!r} (see `callgate hw list`)")
            channels = profile.capacity
            cps = getattr(profile, "calls_per_second", None)
            if args.cps is None and cps:
                args.cps = float(cps)
        await s.set_trunk_limit(args.name, channels, cps=args.cps)
        print(_scope_line(await s.show("trunk", args.name)))
    else:
        setter = {"number": s.set_number_limit, "pool": s.set_pool_size,
                  "device": s.set_device_limit}[args.kind]
        await setter(args.tenant, args.name, args.value)
        print(_scope_line(await s.show(args.kind, args.name, tenant=args.tenant)))
    return 0


async def _show(args: argparse.Namespace, limits: LimitsService) -> int:
    s = limits.settings
    if args.kind is None:
        for kind in ("trunk", "tenant_total", "number", "pool", "device"):
            for status in await s.list_scopes(kind):
                print(_scope_line(status))
        return 0
    if args.kind == "tenant":
        if args.name:
            print(_tenant_line(await s.show_tenant(args.name)))
        else:
            for status in await s.list_scopes("tenant_total"):
                print(_tenant_line(await s.show_tenant(status.tenant)))
        return 0
    if args.name:
        print(_scope_line(await s.show(args.kind, args.name, tenant=args.tenant)))
    else:
        for status in await s.list_scopes(args.kind, tenant=args.tenant):
            print(_scope_line(status))
    return 0


def _fmt(value: Any) -> str:
    return "unlimited" if value is None else str(value)


def _scope_line(st: ScopeStatus) -> str:
    owner = f" (tenant {st.tenant})" if st.tenant else ""
    extra = f" cps {st.cps:g}" if st.cps else ""
    hard = f" hard-max {st.hard_max}" if st.hard_max is not None else ""
    return (f"{st.kind.value} {st.name}{owner}: limit {_fmt(st.limit)}{hard}{extra}, "
            f"in use {st.in_use}, surcharged {st.surcharged}")


def _tenant_line(t: Any) -> str:
    parts = [f"tenant {t.tenant}" + (f" (reseller {t.reseller})" if t.reseller else ""),
             f"policy {t.policy.value}"]
    for name in ("inbound", "outbound", "total"):
        st = getattr(t, name)
        hard = f"/{st.hard_max}" if st.hard_max is not None else ""
        parts.append(f"{name} {st.in_use}/{_fmt(st.limit)}{hard}")
    parts.append(f"surcharged {t.surcharged}")
    return ", ".join(parts)

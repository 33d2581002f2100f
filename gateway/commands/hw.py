"""`callgate hw list|show|validate`: the hardware profiles, as the daemon would load them;
`callgate hw devices`: the desk phones registered through each Asterisk.

`hw devices` opens its own AMI session to each `[[asterisk]]` of the config (as `callgate
calls click-to-call` does), reads PJSIPShowContacts and PJSIPShowEndpoints and matches each
phone's User-Agent to a profile exactly as the daemon's registry does, so it works with
the daemon stopped and needs no API token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from ami import AmiClient, AmiError, AmiSettings
from gateway.commands.common import ConfigError, add_config_option, config_from_args, fail
from gateway.config import Config
from gateway.devices import DeviceRegistry
from gateway.devices.cli_views import CliResult, hw_devices, hw_list, hw_show, hw_validate
from gateway.devices.contact_lookup import resync_from
from gateway.devices.registry import DeviceSnapshot
from hw_profiles import ProfileLoadError, ProfileSet, load_profiles


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hw = sub.add_parser("hw", help="hardware profiles of phones, gateways and spans")
    add_config_option(hw)
    hw_sub = hw.add_subparsers(dest="hw_command", required=True, metavar="ACTION")
    hw_sub.add_parser("list", help="every profile with its capacity").set_defaults(func=_list)
    show = hw_sub.add_parser("show", help="one profile in full")
    show.add_argument("name")
    show.set_defaults(func=_show)
    validate = hw_sub.add_parser("validate", help="check a profile directory (exit 1 on errors)")
    validate.add_argument("dir", nargs="?", help="directory (default: shipped + configured)")
    validate.set_defaults(func=_validate)
    devices = hw_sub.add_parser(
        "devices", help="desk phones registered through the PBX (over AMI; no daemon needed)")
    devices.add_argument("--timeout", type=float, default=10.0,
                         help="seconds to wait for each AMI login")
    devices.set_defaults(func=_devices)


def _extra_dirs(args: argparse.Namespace) -> list[Path]:
    cfg = config_from_args(args)
    return [Path(cfg.daemon.hw_profiles_dir)] if cfg.daemon.hw_profiles_dir else []


def _print(result: CliResult) -> int:
    print(result.text, end="")
    return result.exit_code


def _list(args: argparse.Namespace) -> int:
    try:
        return _print(hw_list(load_profiles(_extra_dirs(args))))
    except (ConfigError, ProfileLoadError) as exc:
        return fail(str(exc), 1)


def _show(args: argparse.Namespace) -> int:
    try:
        return _print(hw_show(load_profiles(_extra_dirs(args)), args.name))
    except (ConfigError, ProfileLoadError) as exc:
        return fail(str(exc), 1)


def _validate(args: argparse.Namespace) -> int:
    try:
        extra = [] if args.dir else _extra_dirs(args)
    except ConfigError as exc:
        return fail(str(exc))
    return _print(hw_validate(Path(args.dir) if args.dir else None, extra))


def _devices(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        profiles = load_profiles(_extra_dirs(args))
    except (ConfigError, ProfileLoadError) as exc:
        return fail(str(exc), 1)
    if not cfg.asterisk:
        return fail("the config has no [[asterisk]]: no PBX to ask for its phones", 1)
    listings, failed = asyncio.run(_read_devices(cfg, profiles, args.timeout))
    if not listings:
        return fail("no Asterisk answered; see the lines above", 1)
    code = _print(hw_devices(listings))
    return 1 if failed else code


async def _read_devices(cfg: Config, profiles: ProfileSet, timeout: float,
                        ) -> tuple[list[tuple[str, Sequence[DeviceSnapshot]]], int]:
    """(asterisk, its phones) for each Asterisk that answered, and how many did not. One
    registry per Asterisk: a listing replaces a registry's state, and each PBX has its
    own phones."""
    clients = {ast.name: AmiClient(AmiSettings(
        name=ast.name, host=ast.host, port=ast.port, username=ast.username, secret=ast.secret,
        action_timeout=ast.action_timeout, ping_interval=ast.ping_interval))
        for ast in cfg.asterisk}
    listings: list[tuple[str, Sequence[DeviceSnapshot]]] = []
    failed = 0
    try:
        for client in clients.values():
            client.start()
        for name, client in clients.items():
            registry = DeviceRegistry(profiles)
            try:
                await client.wait_ready(timeout)
                if not await resync_from(client, registry):
                    raise AmiError("PJSIPShowContacts gave no listing (is res_pjsip loaded?)")
            except (AmiError, TimeoutError) as exc:
                print(f"callgate: Asterisk {name}: {exc or 'no AMI login'}", file=sys.stderr)
                failed += 1
                continue
            listings.append((name, registry.devices()))
    finally:
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.close()
    return listings, failed

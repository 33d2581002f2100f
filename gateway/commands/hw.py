"""`callgate hw list|show|validate`: the hardware profiles, as the daemon would load them."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.commands.common import ConfigError, add_config_option, config_from_args, fail
from gateway.devices.cli_views import CliResult, hw_list, hw_show, hw_validate
from hw_profiles import ProfileLoadError, load_profiles


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

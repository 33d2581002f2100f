"""`callgate calls click-to-call`: ring a desk phone with its auto-answer header, then dial.

The command opens its own AMI session to each `[[asterisk]]` of the config, reads the
registered phones (PJSIPShowContacts/PJSIPShowEndpoints, matched to hardware profiles as
the daemon does) and sends the Originate itself, so it works without the HTTP API and
without a token; the call is then authorized by the dialplan like any other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from ami import AmiClient, AmiError, AmiSettings
from gateway.commands import calls_view
from gateway.commands.common import ConfigError, add_config_option, config_from_args, fail
from gateway.config import Config
from gateway.devices import DeviceRegistry
from gateway.devices.contact_lookup import resync_from
from gateway.devices.dialing import DEFAULT_CONTEXT, ClickToCall, ClickToCallError
from hw_profiles import ProfileLoadError, load_profiles


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    calls = sub.add_parser("calls", aliases=["call"],
                           help="calls up now, live (no ACTION); place calls")
    add_config_option(calls)
    calls_view.add_view(calls)  # `callgate calls` alone: the live calls table
    actions = calls.add_subparsers(dest="calls_command", required=False, metavar="ACTION")
    c2c = actions.add_parser(
        "click-to-call", help="ring a desk phone (it answers by itself), then dial DEST")
    c2c.add_argument("--device", required=True, help="the desk phone's PJSIP endpoint")
    c2c.add_argument("--dest", required=True, help="the number to call")
    c2c.add_argument("--tenant", required=True, help="the tenant the call counts against")
    c2c.add_argument("--context", default=DEFAULT_CONTEXT,
                     help=f"dialplan context that dials DEST (default {DEFAULT_CONTEXT})")
    c2c.add_argument("--caller-id", default="", help="shown on the phone while it rings")
    c2c.add_argument("--timeout", type=float, default=10.0,
                     help="seconds to wait for the AMI login")
    c2c.set_defaults(func=_click_to_call)


def _click_to_call(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        extra = [Path(cfg.daemon.hw_profiles_dir)] if cfg.daemon.hw_profiles_dir else []
        profiles = load_profiles(extra)
    except (ConfigError, ProfileLoadError) as exc:
        return fail(str(exc))
    if not cfg.asterisk:
        return fail("the config has no [[asterisk]]: nothing to originate on")
    return asyncio.run(_place(args, cfg, DeviceRegistry(profiles)))


async def _place(args: argparse.Namespace, cfg: Config, registry: DeviceRegistry) -> int:
    links: dict[str, _Link] = {}
    try:
        for ast in cfg.asterisk:
            client = AmiClient(AmiSettings(
                name=ast.name, host=ast.host, port=ast.port, username=ast.username,
                secret=ast.secret, action_timeout=ast.action_timeout,
                ping_interval=ast.ping_interval))
            links[ast.name] = _Link(client)
            client.start()
        for name, link in links.items():
            try:
                await link.client.wait_ready(args.timeout)
                await resync_from(link.client, registry)
            except AmiError as exc:
                print(f"callgate: Asterisk {name}: {exc}", file=sys.stderr)
        try:
            placed = await ClickToCall(registry, links).place(
                tenant=args.tenant, device=args.device, dest=args.dest,
                caller_id=args.caller_id, context=args.context)
        except ClickToCallError as exc:
            return fail(f"{exc.code}: {exc.message}", 1)
    finally:
        for link in links.values():
            with contextlib.suppress(Exception):
                await link.client.close()
    headers = ", ".join(f"{h}: {v}" for h, v in placed.headers) or "none"
    print(f"ringing {placed.device} ({placed.profile}) on {placed.asterisk}, then "
          f"{placed.dest} in {placed.context}; channel {placed.channel_id}; "
          f"auto-answer {headers}")
    return 0


class _Link:
    def __init__(self, client: AmiClient) -> None:
        self.client = client

"""`callgate` command line: the daemon (`serve`, `demo`, `check-config`) and operator groups.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad configuration (so a systemd
unit with Restart=on-failure and a deploy script can tell a typo from a crash).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.commands import calls, campaign, card, cdr, hw, limit, rate, token, top, voucher
from gateway.config import Config, ConfigError, load_config

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def _cmd_check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(Path(args.config))
    except ConfigError as exc:
        print(f"callgate: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(
        f"{args.config}: ok (site {cfg.site.name}, "
        f"{len(cfg.asterisk)} asterisk, mqtt {'on' if cfg.mqtt else 'off'}, "
        f"redis {'owned' if not cfg.redis.url else 'external'})"
    )
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(Path(args.config))
    except ConfigError as exc:
        print(f"callgate: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return run_daemon(cfg, Path(args.config))


def run_daemon(cfg: Config, config_path: Path | None) -> int:
    import uvloop

    from gateway.daemon import Daemon
    from gateway.logs import configure_logging

    configure_logging(cfg.site.name, cfg.daemon.log_level, cfg.daemon.log_format)
    daemon = Daemon(cfg, config_path=config_path)
    try:
        return uvloop.run(daemon.run())
    except Exception as exc:  # one clear line, then the traceback in the log
        import structlog

        structlog.get_logger("gateway.cli").exception("daemon_failed", error=str(exc))
        print(f"callgate: daemon failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _cmd_demo(args: argparse.Namespace) -> int:
    # The demo is the one command that runs the simulator; the daemon never imports sim/.
    from sim.demo import run_demo

    return run_demo(
        duration=args.duration, rate=args.rate, seed=args.seed, state_dir=Path(args.state_dir)
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callgate", description="Real-time call-control gateway for Asterisk"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the daemon")
    p.add_argument("--config", required=True, help="TOML config file")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("check-config", help="validate a config file and exit")
    p.add_argument("config", help="TOML config file")
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("demo", help="run the gateway against the built-in Asterisk simulator")
    p.add_argument("--duration", type=float, default=0.0,
                   help="seconds to run (0 = until Ctrl-C)")
    p.add_argument("--rate", type=float, default=3.0, help="new calls per second")
    p.add_argument("--seed", type=int, default=1, help="seed of the simulated traffic")
    p.add_argument("--state-dir", default="./state/demo", help="where the demo keeps Redis data")
    p.set_defaults(func=_cmd_demo)

    for group in (calls, campaign, card, cdr, hw, limit, rate, token, top, voucher):
        group.add_parser(sub)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("serve", "demo"):
        # Operator commands: their output is stdout; audit log lines go to stderr.
        from gateway.logs import configure_logging

        configure_logging("cli", "info", "console", stream=sys.stderr)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

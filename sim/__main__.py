"""`python -m sim`: run a simulated Asterisk 22 (AMI + FastAGI dialplan) standalone.

Example::

    python -m sim --ami-port 5038 --agi-url agi://127.0.0.1:4573/authorize \
        --context callgate-out --far-end random --rate 2 --tenant acme
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

import structlog

from sim.dialplan import RECORDING_AGI, ContextConfig
from sim.farend import Dist, RandomFarEnd
from sim.loadgen import LoadGenerator, LoadProfile
from sim.simulator import AsteriskSim
from sim.world import WorldConfig

log = structlog.get_logger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--ami-port", type=int, default=5038)
    p.add_argument("--ami-user", default="gateway")
    p.add_argument("--ami-secret", default="gateway")
    p.add_argument(
        "--agi-url",
        default="agi://127.0.0.1:4573/authorize",
        help="AGI() data of the callgate contexts: URL, then ,key=value arguments",
    )
    p.add_argument("--context", default="callgate-out", help="callgate-style context name")
    p.add_argument("--inbound-context", default="callgate-in")
    p.add_argument(
        "--release-url",
        default=None,
        help="AGI for the h extension, e.g. agi://127.0.0.1:4573/release,lease=${CALLGATE_LEASE}",
    )
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--far-end",
        choices=("pattern", "random"),
        default="pattern",
        help="pattern = the recordings' sim-callee numbers; random = distributions",
    )
    p.add_argument("--ring", default="uniform:1:6", help="ring time distribution (random)")
    p.add_argument("--talk", default="exp:60", help="talk time distribution (random)")
    p.add_argument("--answer", type=float, default=0.8, help="answer probability (random)")
    p.add_argument("--busy", type=float, default=0.1, help="busy rate (random)")
    p.add_argument("--rate", type=float, default=0.0, help="calls per second to generate")
    p.add_argument("--concurrent", type=int, default=0, help="keep N calls up instead")
    p.add_argument("--calls", type=int, default=0, help="stop generating after N calls")
    p.add_argument("--tenant", action="append", default=[], help="tenant[:weight] (repeat)")
    return p


async def amain(args: argparse.Namespace) -> int:
    sim = AsteriskSim(
        speed=args.speed,
        host=args.host,
        ami_port=args.ami_port,
        world_config=WorldConfig(
            ami_user=args.ami_user, ami_secret=args.ami_secret, seed=args.seed
        ),
    )
    base = args.agi_url
    host_part = base.split("/")[2] if base.startswith("agi://") else "127.0.0.1:4573"
    sim.dialplan.config.contexts["gw-out"] = ContextConfig(
        "gw-out", "recording", RECORDING_AGI.replace("127.0.0.1:4573", host_part)
    )
    tenant_arg = "tenant=${TENANT}," if "tenant=" not in base else ""
    sim.add_context(
        ContextConfig(
            args.context,
            "callgate",
            _with_args(base, tenant_arg + "direction=out"),
            release_agi=args.release_url,
        )
    )
    sim.add_context(
        ContextConfig(
            args.inbound_context,
            "callgate",
            _with_args(base, tenant_arg + "direction=in"),
            release_agi=args.release_url,
        )
    )
    if args.far_end == "random":
        sim.set_far_end(
            RandomFarEnd(
                ring=Dist.parse(args.ring),
                talk=Dist.parse(args.talk),
                answer_probability=args.answer,
                busy_rate=args.busy,
            )
        )
    await sim.start()
    print(json.dumps({"ami_port": sim.ami_port, "host": args.host}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    gen: LoadGenerator | None = None
    if args.rate > 0 or args.concurrent > 0:
        tenants = [_tenant(t) for t in args.tenant] or [("default", 1.0)]
        profile = LoadProfile(
            rate=args.rate,
            concurrent=args.concurrent,
            total_calls=args.calls or None,
            tenants=tuple(tenants),
            context=args.context,
            seed=args.seed,
        )
        gen = LoadGenerator(sim, profile)
        gen.start()
    await stop.wait()
    if gen is not None:
        await gen.stop()
        print(json.dumps(gen.stats.as_dict()), flush=True)
    await sim.stop()
    return 0


def _with_args(base: str, extra: str) -> str:
    return f"{base},{extra}"


def _tenant(text: str) -> tuple[str, float]:
    name, _, weight = text.partition(":")
    return name, float(weight or 1.0)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # stdout carries the JSON lines (port, final stats); logs go to stderr
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

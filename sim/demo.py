"""`callgate demo`: the real daemon against the simulated Asterisk, with live traffic.

What runs, all on this machine and loopback:
- the daemon (`callgate serve`) as a child process, owning its own redis-server under the
  demo state directory, connected to the simulator over AMI and serving its FastAGI;
- the simulator, placing calls for three tenants at `rate` calls per second into a
  dialplan context that asks the gateway (`authorize`, then `release` from `h`);
- a terminal view refreshed every second: calls up, per tenant decisions and slots in use
  against limits, the trunk, and the gateway's readiness.

Ctrl-C (or --duration) stops the traffic, lets the calls end, stops the daemon with
SIGTERM and prints the totals, including whether every counter went back to zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from limits import EmergencyNumbers, LimitsService, TenantStatus
from sim.dialplan import ContextConfig
from sim.farend import Dist, RandomFarEnd
from sim.loadgen import Destination, LoadGenerator, LoadProfile
from sim.simulator import AsteriskSim
from sim.world import WorldConfig

SITE = "demo"
TENANTS = (("acme", 3.0), ("globex", 2.0), ("initech", 1.0))
TRUNK = "e1-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(state: Path, agi_port: int, http_port: int, ami_port: int) -> str:
    return f"""# written by `callgate demo`
[site]
name = "{SITE}"

[agi]
listen = "127.0.0.1:{agi_port}"

[http]
listen = "127.0.0.1:{http_port}"

[daemon]
state_dir = "{state}"
log_format = "json"

[[asterisk]]
name = "sim"
host = "127.0.0.1"
port = {ami_port}
username = "gateway"
secret = "gateway"
ping_interval = 5.0
"""


def _http_json(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except OSError as exc:
        return 0, {"error": str(exc)}


async def _wait_ready(proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the daemon exited with {proc.returncode}; see {log_path}"
            )
        status, _ = await asyncio.to_thread(_http_json, port, "/readyz")
        if status == 200:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the daemon did not become ready in 30 s; see {log_path}")


async def _set_limits(limits: LimitsService) -> None:
    s = limits.settings
    await s.set_tenant_limit("acme", "outbound", 12, hard_max=16)
    await s.set_tenant_policy("acme", "surcharge")
    await s.set_tenant_limit("globex", "outbound", 6)
    await s.set_tenant_limit("initech", "outbound", 4)
    await s.set_trunk_limit(TRUNK, 30, cps=20)  # an E1 span (profile sangoma-a101-e1)


def _view(
    gen: LoadGenerator, sim: AsteriskSim, status: dict[str, Any], tenants: list[TenantStatus],
    trunk_in_use: int, started: float,
) -> Group:
    stats = gen.stats
    by_tenant: Counter[str] = stats.by_tenant
    table = Table(title="tenants (outbound)", expand=False)
    for col in ("tenant", "calls placed", "in use", "limit", "surcharged"):
        table.add_column(col, justify="right" if col != "tenant" else "left")
    for t in tenants:
        lim = t.outbound.limit
        hard = f" (hard {t.outbound.hard_max})" if t.outbound.hard_max else ""
        table.add_row(t.tenant, str(by_tenant.get(t.tenant, 0)), str(t.outbound.in_use),
                      ("-" if lim is None else str(lim)) + hard, str(t.surcharged))
    decisions = Table(title="decisions", expand=False)
    decisions.add_column("result")
    decisions.add_column("reason")
    decisions.add_column("calls", justify="right")
    for reason, n in sorted(stats.allowed_by_reason.items()):
        decisions.add_row("ALLOW", reason, str(n))
    for reason, n in sorted(stats.denied_by_reason.items()):
        decisions.add_row("DENY", reason, str(n), style="red")
    if stats.no_decision:
        decisions.add_row("-", "no decision", str(stats.no_decision), style="yellow")
    ready = status.get("ready")
    head = Text.assemble(
        ("callgate demo", "bold"),
        f"  up {time.monotonic() - started:5.0f}s   calls up {stats.in_flight:3d}"
        f"   trunk {TRUNK} {trunk_in_use}/30   gateway ",
        ("ready" if ready else f"NOT READY {status.get('not_ready', '')}",
         "green" if ready else "red"),
        f"   Asterisk channels {len(sim.world.channels)}",
    )
    return Group(head, table, decisions, Text("Ctrl-C to stop", style="dim"))


async def _demo(duration: float, rate: float, seed: int, state: Path) -> int:
    console = Console()
    sim = AsteriskSim(speed=1.0, world_config=WorldConfig(seed=seed))
    await sim.start()
    agi_port, http_port = _free_port(), _free_port()
    config_path = state / "demo.toml"
    config_path.write_text(_config(state, agi_port, http_port, sim.ami_port))
    log_path = state / "daemon.log"
    agi = f"agi://127.0.0.1:{agi_port}"
    sim.add_context(ContextConfig(
        "callgate-out",
        agi=f"{agi}/authorize,tenant=${{TENANT}},direction=out,trunk={TRUNK}",
        release_agi=f"{agi}/release,lease=${{CALLGATE_LEASE}}",
    ))
    sim.set_far_end(RandomFarEnd(ring=Dist.uniform(1, 5), talk=Dist.exponential(25),
                                 answer_probability=0.75, busy_rate=0.1))
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(  # noqa: ASYNC220 (a long-lived child, started once)
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config_path)],
            stdout=log_file, stderr=subprocess.STDOUT,
        )
    console.print(f"daemon pid {proc.pid}: FastAGI 127.0.0.1:{agi_port}, "
                  f"HTTP http://127.0.0.1:{http_port}/readyz, log {log_path}")
    redis = aioredis.Redis(unix_socket_path=str(state / "redis" / "redis.sock"))
    limits = LimitsService(redis, SITE, emergency=EmergencyNumbers(["112"]))
    gen = LoadGenerator(sim, LoadProfile(
        rate=rate, tenants=TENANTS, seed=seed,
        destinations=(Destination("4930", 60, 7), Destination("4989", 39, 7),
                      Destination("112", 1, 0)),
    ))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        await _wait_ready(proc, http_port, log_path)
        await _set_limits(limits)
        gen.start()
        started = time.monotonic()
        with Live(console=console, refresh_per_second=2, transient=False) as live:
            while not stop.is_set():
                if duration and time.monotonic() - started >= duration:
                    break
                _, status = await asyncio.to_thread(_http_json, http_port, "/readyz")
                tenants = [await limits.settings.show_tenant(t) for t, _ in TENANTS]
                trunk = (await limits.settings.show("trunk", TRUNK)).in_use
                live.update(_view(gen, sim, status, tenants, trunk, started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
        await gen.stop()
        console.print("\ntraffic stopped; hanging up the calls still up...")
        for ch in list(sim.world.channels.values()):
            sim.dialplan.request_hangup(ch, 16)
        await asyncio.sleep(2.0)
        leftover = await limits.in_use()
        console.print_json(json.dumps({"totals": gen.stats.as_dict(),
                                       "slots_in_use_after_hangup": leftover}))
        if leftover:
            console.print("[red]counters did not return to zero[/red]")
            code = 1
    except RuntimeError as exc:
        console.print(f"[red]demo failed: {exc}[/red]")
        code = 1
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            rc = await asyncio.to_thread(proc.wait, 20)
            console.print(f"daemon stopped with exit code {rc}")
        await redis.aclose()
        await sim.stop()
    return code


def run_demo(duration: float, rate: float, seed: int, state_dir: Path) -> int:
    import uvloop

    state_dir.mkdir(parents=True, exist_ok=True)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(40),  # the view is the output
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    return uvloop.run(_demo(duration, rate, seed, state_dir.resolve()))

"""Sustained authorize + release through real FastAGI sockets, beside raw EVALSHA.

The gateway side runs in its own process (core 0) as the daemon wires it: AgiServer,
the `authorize` and `release` routes, LimitsService on a real redis-server started here
(on a Unix socket, as the daemon's own one), the daemon's logging (JSON, level --log-level,
default info: a line per decision) written to /dev/null.
The driver is the simulator's Asterisk side in this process on the other core: each
AGI() run is a sim/fastagi.FastAgiCall (a new TCP connection per request, the bytes a real
Asterisk sends and answers), its sockets driven by sim/agi_blast.py from one thread over
epoll, since an asyncio client would cost as much CPU as the gateway and measure itself.
The env block goes out a write per line, as res_agi.c writes it (`--env-writes block`
sends it in one write, which spares both sides a dozen reads per request and is not what
a server meets behind a real Asterisk).
Each simulated call runs `authorize` (tenant with a limit, trunk, number) and then
`release` from its `h` extension, as the example dialplan does. Both sides' CPU time per
call is printed.

The baseline is the same acquire and release Lua scripts called with EVALSHA from one
redis client in this process, at the same concurrency, in the same run: the ratio says
what the FastAGI round trips and the gateway's Python cost on top of Redis.

The floor is a bare uvloop server in place of the gateway, driven the same way: it reads
the env block and, for `authorize`, sends the same one MSet command with a fixed lease, and
does nothing else (no Redis, no parsing, no logging). It is what any FastAGI server costs
on this machine with this driver. CPU is printed per process and per call, user and
kernel apart (redis-server's from INFO cpu): with every process on two shared cores,
N calls/s needs the total under 2 s / N of CPU per call.

Counters must be back to zero at the end (checked: a leak would make the figure a lie).

    .venv/bin/python bench/authorize.py [--calls N] [--concurrency C] [--log-level L]
Last line: JSON {"authorize_per_s", "p50_ms", "p99_ms", "raw_evalsha_per_s", ...}.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, cast

import redis.asyncio as aioredis
import structlog
import uvloop

from bench.load import ServerProcess, percentile_ms, pin_to_core, serve_control
from gateway.agi import AgiServer, Router
from gateway.agi.protocol import quote_arg
from gateway.call_control import CallControl
from gateway.logs import configure_logging
from gateway.metrics import Metrics
from limits import CallRequest, EmergencyNumbers, LimitsService
from sim.agi_blast import AgiBlast, Flow
from sim.fastagi import FastAgiCall

SITE = "bench"




def _quiet() -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _client(url: str) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=5)
    return aioredis.Redis(connection_pool=pool)


def _limits(client: aioredis.Redis) -> LimitsService:
    return LimitsService(client, SITE, emergency=EmergencyNumbers(["112"]))


def _run_gateway(conn: Connection, cpu: int, redis_url: str, log_level: str) -> None:
    pin_to_core(cpu)
    # the daemon's own logging (JSON lines, one per decision at info), thrown away
    configure_logging(SITE, log_level, "json", stream=open(os.devnull, "w"))

    async def main() -> None:
        client = _client(redis_url)
        limits = _limits(client)
        await limits.load_scripts()
        router = Router()
        CallControl(limits, {}, Metrics()).register(router)
        server = AgiServer("127.0.0.1", 0, router, max_connections=4096)
        await server.start()
        await serve_control(conn, server.bound_port)
        await server.close()
        await limits.aclose()
        await client.aclose()

    uvloop.run(main())


# What the gateway sends for an allowed call (a fixed lease): the floor server's one command.
_MSET = ("EXEC MSet " + quote_arg(
    "CALLGATE_REQUEST=tenant=acme&direction=out&dest=5551000&trunk=e1-1&number=%2B15551230000,"
    "CALLGATE_REASON=ok,CALLGATE_CAUSE=0,CALLGATE_LEASE=0123456789abcdef,CALLGATE_MAXSEC=0,"
    "CALLGATE_RESULT=ALLOW") + "\n").encode()


class _FloorConnection(asyncio.Protocol):
    """The socket work of one AGI() run and nothing else: read the env block; for
    `authorize` send the decision's one command and wait for its reply; then close. No
    Redis, no parsing, no logging: what any FastAGI server on this machine must spend."""

    def __init__(self) -> None:
        self._buffer = b""
        self._sent = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._buffer += data
        if self._sent:
            if b"\n" in self._buffer:
                self._transport.close()  # the reply to MSet: done
            return
        end = self._buffer.find(b"\n\n")
        if end < 0:
            return
        if b"agi_network_script: authorize" in self._buffer[:end]:
            self._sent = True
            self._buffer = self._buffer[end + 2:]
            self._transport.write(_MSET)
        else:
            self._transport.close()  # release: nothing to say


def _run_floor_server(conn: Connection, cpu: int) -> None:
    pin_to_core(cpu)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_FloorConnection, "127.0.0.1", 0, backlog=4096)
        await serve_control(conn, server.sockets[0].getsockname()[1])
        server.close()

    uvloop.run(main())


async def _drive(
    one: Callable[[int], Awaitable[float]], calls: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(calls))

    async def worker() -> None:
        for i in counter:
            latencies.append(await one(i))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies




def _agi_flows(port: int, first: int, count: int) -> Iterator[Flow]:
    """One flow per call: `authorize` (tenant with a limit, trunk, number), then `release`
    with the lease it set, from the `h` extension."""
    args = ("tenant=acme", "direction=out", "trunk=e1-1", "number=+15551230000")

    def flow(i: int) -> Flow:
        env = {"agi_uniqueid": f"1700000000.{i}", "agi_extension": "5551000"}
        outcome = yield FastAgiCall("127.0.0.1", port, "authorize", env, args=args)
        if outcome.variables.get("CALLGATE_RESULT") != "ALLOW":
            raise RuntimeError(f"call {i} refused: {outcome.variables}")
        lease = outcome.variables["CALLGATE_LEASE"]
        yield FastAgiCall("127.0.0.1", port, "release", env, args=(f"lease={lease}",))

    return (flow(i) for i in range(first, first + count))


def _drive_agi(port: int, first: int, calls: int, concurrency: int, line_writes: bool
               ) -> tuple[float, list[float]]:
    blast = AgiBlast(line_writes=line_writes)
    started = time.perf_counter()
    report = blast.run(_agi_flows(port, first, calls), concurrency)
    elapsed = time.perf_counter() - started
    blast.close()
    if report.failures or report.runs != 2 * calls:
        raise RuntimeError(f"{report.failures} AGI runs failed, {report.runs} of {2 * calls} ran")
    return elapsed, report.latencies["authorize"]


async def _redis_cpu(client: aioredis.Redis) -> tuple[float, float]:
    """redis-server's own (user, kernel) CPU seconds so far, from INFO cpu."""
    info = await client.info("cpu")
    return float(info["used_cpu_user"]), float(info["used_cpu_sys"])


def _raw_call(limits: LimitsService) -> Callable[[int], Awaitable[float]]:
    async def one(i: int) -> float:
        req = CallRequest(tenant="acme", direction="out", dest="5551000",  # type: ignore[arg-type]
                          trunk="e1-1", number="+15551230000", call_id=f"1700000000.{i}")
        started = time.perf_counter()
        acquire = limits.raw_acquire_call(req)
        await acquire.run()
        latency = time.perf_counter() - started
        await limits.raw_release_call(acquire.lease_id).run()
        return latency

    return one


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=8000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--env-writes", choices=("line", "block"), default="line",
                        help="the env block a write per line, as res_agi.c sends it "
                             "(default), or in one write")
    parser.add_argument("--log-level", default="info",
                        help="the gateway's log level (default info, as the daemon runs)")
    opts = parser.parse_args(argv)
    lines = opts.env_writes == "line"
    _quiet()

    exe = shutil.which("redis-server")
    if exe is None:
        sys.exit("redis-server is not installed (make test installs it)")
    workdir = tempfile.mkdtemp(prefix="callgate-bench-")
    # A Unix socket, as the daemon's own redis-server (no [redis] url) listens on.
    sock = os.path.join(workdir, "redis.sock")
    redis_proc = subprocess.Popen(
        [exe, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
         "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"unix://{sock}"
    gateway = floor = None
    try:
        for _ in range(100):  # until redis-server listens
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        gateway = ServerProcess(_run_gateway, url, opts.log_level)
        floor = ServerProcess(_run_floor_server)
        agi_port = gateway.port
        pin_to_core(1)

        async def run() -> dict[str, Any]:
            client = _client(url)
            limits = _limits(client)
            await limits.settings.set_tenant_limit("acme", "outbound", 100_000)
            await limits.settings.set_trunk_limit("e1-1", 100_000)
            await limits.settings.set_number_limit("acme", "+15551230000", 100_000)
            await limits.load_scripts()
            raw_one = _raw_call(limits)
            _drive_agi(agi_port, 0, 300, opts.concurrency, lines)  # warm-up
            _drive_agi(floor.port, 0, 300, opts.concurrency, lines)
            await _drive(raw_one, 300, opts.concurrency)
            # Alternate halves so noise from other processes hits both alike.
            agi_s, raw_s = 0.0, 0.0
            # CPU seconds during the FastAGI halves: (user, kernel) per process
            gateway_cpu, driver_cpu, redis_cpu = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]
            floor_s, floor_cpu, floor_driver_cpu = 0.0, 0.0, 0.0
            floor_lat: list[float] = []
            agi_lat: list[float] = []
            raw_lat: list[float] = []
            half = opts.calls // 2
            for rnd in range(2):
                redis_before = await _redis_cpu(client)
                gateway.mark()
                mine = os.times()
                s, lat = _drive_agi(agi_port, 1000 + rnd * half, half, opts.concurrency, lines)
                after = os.times()
                driver_cpu[0] += after.user - mine.user
                driver_cpu[1] += after.system - mine.system
                for i, spent in enumerate(gateway.cpu_split_since_mark()):
                    gateway_cpu[i] += spent
                redis_after = await _redis_cpu(client)
                for i in range(2):
                    redis_cpu[i] += redis_after[i] - redis_before[i]
                agi_s, agi_lat = agi_s + s, agi_lat + lat
                s, lat = await _drive(raw_one, half, opts.concurrency)
                raw_s, raw_lat = raw_s + s, raw_lat + lat
                floor.mark()
                mine_before = time.process_time()
                s, lat = _drive_agi(floor.port, 1000 + rnd * half, half, opts.concurrency, lines)
                floor_driver_cpu += time.process_time() - mine_before
                floor_cpu += floor.cpu_since_mark()
                floor_s, floor_lat = floor_s + s, floor_lat + lat
            leaked = await limits.in_use()
            await client.aclose()
            return {"agi_s": agi_s, "raw_s": raw_s, "agi_lat": agi_lat, "raw_lat": raw_lat,
                    "leaked": leaked, "calls": half * 2, "gateway_cpu": gateway_cpu,
                    "driver_cpu": driver_cpu, "redis_cpu": redis_cpu,
                    "floor_s": floor_s, "floor_lat": floor_lat, "floor_cpu": floor_cpu,
                    "floor_driver_cpu": floor_driver_cpu}

        r = uvloop.run(run())
    finally:
        for server in (gateway, floor):
            if server is not None:
                server.stop()
        redis_proc.terminate()
        redis_proc.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)

    calls: int = r["calls"]

    def per_call(seconds: float) -> float:
        return round(seconds / calls * 1e6, 1)

    gateway_cpu, driver_cpu, redis_cpu = (sum(r[k]) for k in ("gateway_cpu", "driver_cpu",
                                                              "redis_cpu"))
    total_cpu = gateway_cpu + driver_cpu + redis_cpu
    cores = os.cpu_count() or 1
    figures = {
        "authorize_per_s": round(calls / r["agi_s"], 1),
        "p50_ms": round(percentile_ms(r["agi_lat"], 0.50), 3),
        "p99_ms": round(percentile_ms(r["agi_lat"], 0.99), 3),
        "raw_evalsha_per_s": round(calls / r["raw_s"], 1),
        "raw_p99_ms": round(percentile_ms(r["raw_lat"], 0.99), 3),
        "ratio": round(r["raw_s"] / r["agi_s"], 3),
        "calls": calls,
        "concurrency": opts.concurrency,
        "env_writes": opts.env_writes,
        "leaked_slots": sum(r["leaked"].values()),
        "gateway_cpu_us_per_call": per_call(gateway_cpu),
        "gateway_kernel_us_per_call": per_call(r["gateway_cpu"][1]),
        "one_core_capacity_per_s": round(calls / gateway_cpu, 1),
        "driver_cpu_us_per_call": per_call(driver_cpu),
        "driver_kernel_us_per_call": per_call(r["driver_cpu"][1]),
        "redis_cpu_us_per_call": per_call(redis_cpu),
        "total_cpu_us_per_call": per_call(total_cpu),
        "all_cores_ceiling_per_s": round(calls * cores / total_cpu, 1),
        "floor_per_s": round(calls / r["floor_s"], 1),
        "floor_p99_ms": round(percentile_ms(r["floor_lat"], 0.99), 3),
        "floor_server_cpu_us_per_call": per_call(r["floor_cpu"]),
        "floor_driver_cpu_us_per_call": per_call(r["floor_driver_cpu"]),
    }
    print(f"cores: {cores}  calls: {calls}  in flight: {opts.concurrency}  env block: "
          + ("a write per line, as Asterisk" if lines else "one write"))
    print("each call = authorize + release; per second = whole calls")
    print(f"{'':34}{'calls/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'FastAGI authorize+release':34}{figures['authorize_per_s']:>10.0f}"
          f"{figures['p50_ms']:>10.2f}{figures['p99_ms']:>10.2f}")
    print(f"{'raw EVALSHA acquire+release':34}{figures['raw_evalsha_per_s']:>10.0f}"
          f"{percentile_ms(r['raw_lat'], 0.5):>10.2f}{figures['raw_p99_ms']:>10.2f}")
    print(f"{'floor: bare socket server':34}{figures['floor_per_s']:>10.0f}"
          f"{percentile_ms(r['floor_lat'], 0.5):>10.2f}{figures['floor_p99_ms']:>10.2f}"
          f"   (server {figures['floor_server_cpu_us_per_call']:.0f} us, driver "
          f"{figures['floor_driver_cpu_us_per_call']:.0f} us per call)")
    print("CPU per call, us (user + kernel):")
    for name, key in (("gateway", "gateway_cpu"), ("redis-server", "redis_cpu"),
                      ("simulator (driver)", "driver_cpu")):
        user, kernel = (per_call(x) for x in r[key])
        print(f"  {name:20}{user + kernel:>7.0f} = {user:.0f} + {kernel:.0f}")
    print(f"  {'total':20}{figures['total_cpu_us_per_call']:>7.0f}: {cores} cores fully busy "
          f"would run {figures['all_cores_ceiling_per_s']:.0f} calls/s")
    print(f"gateway alone on one core would decide {figures['one_core_capacity_per_s']:.0f} "
          "calls/s")
    print(f"gateway / raw EVALSHA throughput: {figures['ratio']:.2f}; "
          f"slots left in use after the run: {figures['leaked_slots']}")
    print(json.dumps(figures))
    if figures["leaked_slots"]:
        sys.exit("slots leaked: counters are not back to zero")
    return figures


if __name__ == "__main__":
    main()

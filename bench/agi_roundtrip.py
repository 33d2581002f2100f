"""FastAGI requests per second through AgiServer, beside a raw asyncio echo server.

The AGI side: a real AgiServer under uvloop in its own process, one route setting three
channel variables, driven by sim/fastagi.FastAgiCall (a new TCP connection per request, as
Asterisk does) from this process, pinned to the other core where there is one.

The baseline: a raw asyncio-streams echo server under uvloop in its own process, doing the
same per connection: a new connection, four request/response exchanges (AGI: env block ->
command, then three replies -> next command / close), the server closing first. Its first
message has the size of the env block.

Both servers run side by side and the driver alternates rounds between them, so load from
other processes on the machine hits both alike and the ratio compares like with like.
Server CPU time per request is printed too: when the Python driver is the bottleneck, rps
mostly measures the driver, and CPU per request tells what the gateway itself costs.

    .venv/bin/python bench/agi_roundtrip.py [--requests N] [--concurrency C]
Last line: JSON with agi_rps, p50_ms, p99_ms, echo_rps and the rest.
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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import structlog
import uvloop

from bench.load import ServerProcess, percentile_ms, pin_to_core, serve_control
from gateway.agi import AgiRequest, AgiServer, AgiSession, Router
from sim.fastagi import FastAgiCall

EXCHANGES = 4  # client messages per connection: env block + three replies
WARMUP = 300




async def _bench_route(request: AgiRequest, session: AgiSession) -> None:
    await session.set_variable("CALLGATE_RESULT", "ALLOW")
    await session.set_variable("CALLGATE_LEASE", f"lease-{request.call_id}")
    await session.set_variable("CALLGATE_MAXSEC", "0")


def _run_agi_server(conn: Connection, cpu: int) -> None:
    pin_to_core(cpu)

    async def main() -> None:
        router = Router()
        router.register("bench", _bench_route)
        quiet = structlog.wrap_logger(
            structlog.PrintLogger(),
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        )
        server = AgiServer("127.0.0.1", 0, router, max_connections=4096, logger=quiet)
        await server.start()
        await serve_control(conn, server.bound_port)
        await server.close()

    uvloop.run(main())


def _run_echo_server(conn: Connection, cpu: int) -> None:
    pin_to_core(cpu)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(EXCHANGES):
                line = await reader.readline()
                if not line:
                    break
                writer.write(line)
                await writer.drain()
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        await serve_control(conn, server.sockets[0].getsockname()[1])
        server.close()

    uvloop.run(main())


async def _drive(
    one: Callable[[int], Awaitable[None]], requests: int, concurrency: int
) -> tuple[float, list[float]]:
    """Run `one(i)` for i < requests, `concurrency` at a time: (seconds, latencies)."""
    latencies: list[float] = []
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies




@dataclass
class _Tally:
    seconds: float = 0.0
    server_cpu: float = 0.0
    driver_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def figures(self, requests: int) -> dict[str, float]:
        return {
            "rps": requests / self.seconds,
            "p50_ms": percentile_ms(self.latencies, 0.50),
            "p99_ms": percentile_ms(self.latencies, 0.99),
            "server_cpu_us": self.server_cpu / requests * 1e6,
            "driver_cpu_us": self.driver_cpu / requests * 1e6,
        }


async def _phase(
    server: ServerProcess,
    one: Callable[[int], Awaitable[None]],
    requests: int,
    concurrency: int,
    tally: _Tally,
) -> None:
    server.mark()
    cpu0 = time.process_time()
    elapsed, latencies = await _drive(one, requests, concurrency)
    tally.driver_cpu += time.process_time() - cpu0
    tally.server_cpu += server.cpu_since_mark()
    tally.seconds += elapsed
    tally.latencies += latencies


def _measure(requests: int, concurrency: int, rounds: int) -> tuple[_Tally, _Tally]:
    """Alternate AGI and echo rounds, so load from elsewhere hits both alike."""
    agi_server = ServerProcess(_run_agi_server)
    echo_server = ServerProcess(_run_echo_server)
    pin_to_core(1)
    try:
        agi_one, echo_one = _agi_client(agi_server.port), _echo_client(echo_server.port)
        agi, echo = _Tally(), _Tally()
        per_round = max(1, requests // rounds)

        async def run() -> None:
            await _drive(agi_one, WARMUP, concurrency)
            await _drive(echo_one, WARMUP, concurrency)
            for _ in range(rounds):
                await _phase(agi_server, agi_one, per_round, concurrency, agi)
                await _phase(echo_server, echo_one, per_round, concurrency, echo)

        uvloop.run(run())
        return agi, echo
    finally:
        agi_server.stop()
        echo_server.stop()


def _agi_client(port: int) -> Callable[[int], Awaitable[None]]:
    async def one(i: int) -> None:
        call = FastAgiCall(
            "127.0.0.1",
            port,
            "bench?tenant=acme",
            {"agi_uniqueid": f"1700000000.{i}", "agi_extension": "100"},
            args=("direction=out",),
        )
        outcome = await call.run()
        if outcome.variables.get("CALLGATE_RESULT") != "ALLOW":
            raise RuntimeError(f"bench call {i} not allowed: {outcome}")

    return one


def _echo_client(port: int) -> Callable[[int], Awaitable[None]]:
    env_size = len(
        FastAgiCall("127.0.0.1", port, "bench?tenant=acme", args=("direction=out",)).env_block()
    )
    messages = [b"e" * (env_size - 1) + b"\n"] + [b"200 result=1\n"] * (EXCHANGES - 1)

    async def one(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for message in messages:
            writer.write(message)
            await writer.drain()
            if await reader.readexactly(len(message)) != message:
                raise RuntimeError("echo mismatch")
        await reader.read()  # the server closes first, as AgiServer does
        writer.close()

    return one


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="alternating AGI/echo rounds")
    opts = parser.parse_args(argv)

    rounds = max(1, opts.rounds)
    done = opts.requests // rounds * rounds
    agi_tally, echo_tally = _measure(opts.requests, opts.concurrency, rounds)
    agi, echo = agi_tally.figures(done), echo_tally.figures(done)

    print(f"cores: {os.cpu_count()}  requests: {done} each, in {rounds} alternating rounds, "
          f"{opts.concurrency} in flight")
    print(f"{'':24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'server µs':>12}{'driver µs':>12}")
    for name, row in (("FastAGI (3 SET VARIABLE)", agi), ("raw asyncio echo", echo)):
        print(
            f"{name:24}{row['rps']:>10.0f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
            f"{row['server_cpu_us']:>12.1f}{row['driver_cpu_us']:>12.1f}"
        )
    ratio = agi["rps"] / echo["rps"]
    cpu_ratio = agi["server_cpu_us"] / echo["server_cpu_us"]
    print(f"AGI/echo throughput ratio: {ratio:.2f}; server CPU per request: {cpu_ratio:.2f}x echo")
    figures = {
        "agi_rps": round(agi["rps"], 1),
        "p50_ms": round(agi["p50_ms"], 3),
        "p99_ms": round(agi["p99_ms"], 3),
        "echo_rps": round(echo["rps"], 1),
        "echo_p50_ms": round(echo["p50_ms"], 3),
        "echo_p99_ms": round(echo["p99_ms"], 3),
        "ratio": round(ratio, 3),
        "agi_server_cpu_us": round(agi["server_cpu_us"], 1),
        "echo_server_cpu_us": round(echo["server_cpu_us"], 1),
        "requests": done,
        "concurrency": opts.concurrency,
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()

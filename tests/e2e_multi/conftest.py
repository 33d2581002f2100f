"""Two real gateway processes on one Redis (a single server or the 3-master cluster) in
front of one simulated Asterisk, as an operator runs them behind a list of AGI hosts.

The simulator runs in the test's event loop; each gateway is a `callgate serve`
subprocess. The dialplan context `out-a` asks gateway a, `out-b` asks gateway b, so a
test decides which gateway serves each AGI request. Neither context has an h-extension
release: slots come back only through AMI Hangup events, lease expiry or reconciliation.
`card-a` / `card-b` are the same with `card=${CARD}` (prepaid card calls).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.redis_connect import RedisClient, connect_redis
from limits import BackendUnavailable, EmergencyNumbers, LimitsService
from sim.dialplan import ContextConfig
from sim.gateway_call import GatewayCall
from sim.simulator import AsteriskSim
from sim.world import WorldConfig
from tests.scaleout.conftest import cluster  # noqa: F401  (the session's 3-master cluster)
from tests.support.daemon import DaemonProcess, daemon_config, run_daemon
from tests.support.redis_cluster import RedisClusterProcesses
from tests.support.servers import RedisServer

SITE = "multi"
ASTERISK = "sim"
STAY_UP = "150"  # the simulated far end answers and stays up


@dataclass
class Gateway:
    name: str
    tmp: Path
    config_text: str
    http_port: int
    agi_port: int
    proc: DaemonProcess | None = None
    starts: int = 0

    def readiness(self) -> dict[str, dict[str, object]]:
        assert self.proc is not None
        _, raw = self.proc.http_get("/readyz")
        checks: dict[str, dict[str, object]] = json.loads(raw)["checks"]
        return checks

    def is_owner(self) -> bool:
        if self.proc is None or self.proc.proc.poll() is not None:
            return False
        try:
            detail = str(self.readiness()[f"event_owner:{ASTERISK}"]["detail"])
        except (OSError, KeyError, ValueError):
            return False
        return detail.startswith("this gateway")

    def metric(self, name: str, **labels: str) -> float:
        assert self.proc is not None
        _, raw = self.proc.http_get("/metrics")
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        pattern = re.compile(rf"^{re.escape(name)}(?:\{{{re.escape(want)}\}})? (\S+)$", re.M)
        found = pattern.search(raw.decode())
        return float(found.group(1)) if found else 0.0


@dataclass
class Farm:
    sim: AsteriskSim
    limits: LimitsService
    gateways: dict[str, Gateway]
    redis: RedisClient
    exits: ExitStack = field(default_factory=ExitStack)

    async def start(self, name: str) -> Gateway:
        gw = self.gateways[name]
        gw.starts += 1
        gw.proc = self.exits.enter_context(
            run_daemon(gw.tmp, gw.config_text, gw.http_port, gw.agi_port,
                       name=f"{name}-{gw.starts}"))
        await asyncio.to_thread(gw.proc.wait_ready, 30.0)
        return gw

    async def kill(self, name: str) -> None:
        gw = self.gateways[name]
        assert gw.proc is not None
        gw.proc.signal(signal.SIGKILL)
        await asyncio.to_thread(gw.proc.wait_exit, 10.0)

    async def owners(self) -> list[str]:
        return [n for n, gw in self.gateways.items()
                if await asyncio.to_thread(gw.is_owner)]

    async def wait_owner(self, timeout: float, among: tuple[str, ...] = ()) -> tuple[str, float]:
        """The single event owner (one of `among` if given) and the seconds it took."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        found: list[str] = []
        while loop.time() - started < timeout:
            found = await self.owners()
            if len(found) == 1 and (not among or found[0] in among):
                return found[0], loop.time() - started
            await asyncio.sleep(0.1)
        raise AssertionError(f"event owners {found} after {timeout}s")

    def place(self, gateway: str, number: str = STAY_UP, tenant: str = "acme") -> GatewayCall:
        return self.sim.place_call(number, context=f"out-{gateway}",
                                   variables={"TENANT": tenant})

    def place_card(self, gateway: str, card: str, number: str = STAY_UP,
                   tenant: str = "acme") -> GatewayCall:
        return self.sim.place_call(number, context=f"card-{gateway}",
                                   variables={"TENANT": tenant, "CARD": card})

    async def decided(self, call: GatewayCall, timeout: float = 15.0) -> str:
        async with asyncio.timeout(timeout):
            while not call.var(call.g2, "CALLGATE_RESULT") and not call.ended.is_set():
                await asyncio.sleep(0.01)
        return call.var(call.g2, "CALLGATE_RESULT")

    def hang_up(self, call: GatewayCall) -> None:
        self.sim.dialplan.request_hangup(call.g2, 16)

    async def wait_in_use(self, expected: int, timeout: float) -> float:
        """Seconds until the tenant's outbound and the trunk counters both equal
        `expected` (the live calls); fails with the last values."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        last: tuple[int, int] | None = None
        while loop.time() - started < timeout:
            try:
                last = (
                    (await self.limits.settings.show("tenant_outbound", "acme")).in_use,
                    (await self.limits.settings.show("trunk", "e1-1")).in_use,
                )
            except BackendUnavailable:
                last = None
            if last == (expected, expected):
                return loop.time() - started
            await asyncio.sleep(0.05)
        raise AssertionError(f"counters {last} != live calls {expected} after {timeout}s")


async def make_farm(tmp: Path, redis_url: str, client: RedisClient) -> Farm:
    sim = AsteriskSim(speed=1.0, world_config=WorldConfig(auth_fail_delay=0.1, seed=5))
    await sim.start()
    extra = (
        f'[limits]\nlease_ttl = 30.0\n\n'
        f'[[asterisk]]\nname = "{ASTERISK}"\nhost = "127.0.0.1"\nport = {sim.ami_port}\n'
        f'username = "gateway"\nsecret = "gateway"\nping_interval = 2.0\n'
        f'action_timeout = 3.0\n'
    )
    gateways: dict[str, Gateway] = {}
    for name in ("a", "b"):
        text, http_port, agi_port = daemon_config(tmp / name, redis_url=redis_url, site=SITE,
                                                  extra=extra)
        gateways[name] = Gateway(name, tmp / name, text, http_port, agi_port)
        sim.add_context(ContextConfig(
            f"out-{name}",
            agi=f"agi://127.0.0.1:{agi_port}/authorize,tenant=${{TENANT}},direction=out,"
                "trunk=e1-1",
        ))
        sim.add_context(ContextConfig(
            f"card-{name}",
            agi=f"agi://127.0.0.1:{agi_port}/authorize,tenant=${{TENANT}},direction=out,"
                "trunk=e1-1,card=${CARD}",
            maxsec_margin=30,  # the gateway cuts a card call off, L() is a backstop
        ))
    limits = LimitsService(client, SITE, emergency=EmergencyNumbers(["112"]))
    return Farm(sim, limits, gateways, client)


@pytest.fixture
async def farm(tmp_path: Path, redis_aof: RedisServer) -> AsyncIterator[Farm]:
    client = aioredis.Redis.from_url(redis_aof.url)
    f = await make_farm(tmp_path, redis_aof.url, client)
    try:
        yield f
    finally:
        f.exits.close()
        await f.sim.stop()
        await client.aclose()


@pytest.fixture
async def cluster_farm(tmp_path: Path,
                       cluster: RedisClusterProcesses) -> AsyncIterator[Farm]:  # noqa: F811
    for node in cluster.nodes:
        if not node.running:
            cluster.restart(node)
    cluster.flushall()
    client = connect_redis(cluster.url, cluster=False, socket_timeout=2.0)
    f = await make_farm(tmp_path, cluster.url, client)
    try:
        yield f
    finally:
        f.exits.close()
        await f.sim.stop()
        await client.aclose()

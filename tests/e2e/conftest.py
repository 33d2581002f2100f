"""The whole chain: the real daemon process, the simulated Asterisk, a real Redis.

The simulator runs in the test's event loop (so tests place and end calls directly);
the daemon is a subprocess talking to it over real AMI and FastAGI sockets, as in
production. Blocking waits on the daemon run in threads so the simulator keeps running.
"""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from limits import BackendUnavailable, EmergencyNumbers, LimitsService
from sim.dialplan import ContextConfig
from sim.gateway_call import GatewayCall
from sim.simulator import AsteriskSim
from sim.world import WorldConfig
from tests.support.daemon import DaemonProcess, daemon_config, run_daemon
from tests.support.servers import RedisServer

SITE = "e2e"


@dataclass
class Stack:
    sim: AsteriskSim
    redis_url: str
    tmp: Path
    limits: LimitsService
    config_text: str
    limits_redis: aioredis.Redis
    http_port: int
    agi_port: int
    exits: ExitStack = field(default_factory=ExitStack)
    daemon: DaemonProcess | None = None
    starts: int = 0

    async def aclose(self) -> None:
        """Stop what the stack started: daemons, then the simulator, then its Redis client."""
        self.exits.close()
        await self.sim.stop()
        await self.limits_redis.aclose()

    async def start_daemon(self) -> DaemonProcess:
        self.starts += 1
        self.daemon = self.exits.enter_context(
            run_daemon(self.tmp, self.config_text, self.http_port, self.agi_port,
                       name=f"daemon-{self.starts}")
        )
        await asyncio.to_thread(self.daemon.wait_ready, 20.0)
        return self.daemon

    async def kill_daemon(self) -> None:
        assert self.daemon is not None
        self.daemon.signal(signal.SIGKILL)
        await asyncio.to_thread(self.daemon.wait_exit, 10.0)

    def place(self, number: str, tenant: str = "acme") -> GatewayCall:
        return self.sim.place_call(number, context="callgate-out", variables={"TENANT": tenant})

    async def decided(self, call: GatewayCall, timeout: float = 10.0) -> dict[str, str]:
        """The CALLGATE_* variables once the gateway has answered this call."""
        async with asyncio.timeout(timeout):
            while not call.var(call.g2, "CALLGATE_RESULT") and not call.ended.is_set():
                await asyncio.sleep(0.01)
        return {k: v for k, v in call.g2.variables.items() if k.startswith("CALLGATE_")}

    async def live_calls(self) -> dict[str, Any]:
        """The daemon's leases and channel table, as /v1/calls shows them to a site token."""
        from gateway.api import create_token

        token = await create_token(self.limits_redis, SITE, "*", "admin")

        def get() -> dict[str, Any]:
            req = urllib.request.Request(
                f"http://127.0.0.1:{self.http_port}/v1/calls",
                headers={"Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(req, timeout=5) as resp:
                body: dict[str, Any] = json.loads(resp.read())
            return body

        return await asyncio.to_thread(get)

    def hang_up(self, call: GatewayCall) -> None:
        self.sim.dialplan.request_hangup(call.g2, 16)

    async def in_use(self, kind: str, name: str, tenant: str | None = None) -> int:
        return (await self.limits.settings.show(kind, name, tenant=tenant)).in_use

    async def wait_in_use(self, expected: dict[tuple[str, str], int], timeout: float) -> float:
        """Seconds until every counter equals `expected`; fails with the last values."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        last: dict[tuple[str, str], int] = {}
        while loop.time() - started < timeout:
            try:
                last = {key: await self.in_use(*key) for key in expected}
            except BackendUnavailable:  # the test's own client, while Redis restarts
                last = {}
            if last == expected:
                return loop.time() - started
            await asyncio.sleep(0.05)
        raise AssertionError(f"counters {last} != live calls {expected} after {timeout}s")


@pytest.fixture
def redis_for_stack(redis_aof: RedisServer) -> Iterator[RedisServer]:
    yield redis_aof


@pytest.fixture
async def stack(tmp_path: Path, redis_for_stack: RedisServer) -> AsyncIterator[Stack]:
    sim = AsteriskSim(speed=1.0, world_config=WorldConfig(auth_fail_delay=0.1, seed=3))
    await sim.start()
    client = aioredis.Redis.from_url(redis_for_stack.url)
    limits = LimitsService(client, SITE, emergency=EmergencyNumbers(["112", "911"]))
    extra = (
        f'[limits]\nlease_ttl = 30.0\n\n'
        f'[[asterisk]]\nname = "sim"\nhost = "127.0.0.1"\nport = {sim.ami_port}\n'
        f'username = "gateway"\nsecret = "gateway"\nping_interval = 2.0\naction_timeout = 3.0\n'
    )
    text, http_port, agi_port = daemon_config(
        tmp_path, redis_url=redis_for_stack.url, site=SITE, extra=extra
    )
    agi = f"agi://127.0.0.1:{agi_port}"
    sim.add_context(ContextConfig(
        "callgate-out",
        agi=f"{agi}/authorize,tenant=${{TENANT}},direction=out,trunk=e1-1",
        release_agi=f"{agi}/release,lease=${{CALLGATE_LEASE}}",
    ))
    st = Stack(sim, redis_for_stack.url, tmp_path, limits, text, client, http_port, agi_port)
    try:
        yield st
    finally:
        await st.aclose()

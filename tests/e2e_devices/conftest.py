"""The daemon process, the simulated Asterisk with desk phones, a real Redis: the e2e
Stack of tests/e2e, plus the contexts and helpers that calls to and from phones need."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from sim.dialplan import ContextConfig
from sim.gateway_call import GatewayCall
from sim.simulator import AsteriskSim
from tests.e2e.conftest import SITE, Stack, redis_for_stack, stack

__all__ = ["Lab", "redis_for_stack", "stack"]

YEALINK_T31P = "Yealink SIP-T31P 124.86.0.40"  # 2 call appearances
POLY_VVX_450 = "PolycomVVX-VVX_450-UA/6.4.3.5018"  # 12
GRANDSTREAM_GXP2170 = "Grandstream GXP2170 1.0.11.6"  # 12
STAY_UP = "150"  # the simulated far end answers and stays up


@dataclass
class Lab:
    stack: Stack
    token: str = ""

    @property
    def sim(self) -> AsteriskSim:
        return self.stack.sim

    def from_phone(self, endpoint: str, number: str, tenant: str = "acme") -> GatewayCall:
        """Desk phone `endpoint` dials `number`: its PJSIP channel runs callgate-out."""
        return self.sim.place_call(number, context="callgate-out", endpoint=endpoint,
                                   caller_num=endpoint, variables={"TENANT": tenant})

    def to_phone(self, number: str, tenant: str = "acme", phone: str = "") -> GatewayCall:
        """A call from the trunk to extension `number` (callgate-in, direction=in);
        `phone` names the desk phone explicitly (device=)."""
        context = "callgate-in-device" if phone else "callgate-in"
        variables = {"TENANT": tenant, "PHONE": phone}
        return self.sim.place_call(number, context=context, variables=variables)

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if not self.token:
            from gateway.api import create_token

            self.token = await create_token(self.stack.limits_redis, SITE, "*", "operator")
        url = f"http://127.0.0.1:{self.stack.http_port}{path}"
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

        def call() -> tuple[int, Any]:
            req = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        return await asyncio.to_thread(call)

    async def devices(self) -> dict[str, dict[str, Any]]:
        status, body = await self.api("GET", "/v1/devices")
        assert status == 200, body
        return {d["endpoint"]: d for d in body["devices"]}

    async def wait_devices(self, want: dict[str, str], timeout: float = 10.0) -> dict[str, Any]:
        """Until each endpoint in `want` is registered with that profile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen: dict[str, Any] = {}
        while loop.time() < deadline:
            seen = await self.devices()
            if all(seen.get(e, {}).get("registered") and seen[e]["profile"] == p
                   for e, p in want.items()):
                return seen
            await asyncio.sleep(0.05)
        got = {e: (d["registered"], d["profile"]) for e, d in seen.items()}
        raise AssertionError(f"devices {got}, wanted {want}")


@pytest.fixture
async def lab(stack: Stack) -> AsyncIterator[Lab]:
    agi = f"agi://127.0.0.1:{stack.agi_port}"
    release = f"{agi}/release,lease=${{CALLGATE_LEASE}}"
    stack.sim.add_context(ContextConfig(
        "callgate-in", agi=f"{agi}/authorize,tenant=${{TENANT}},direction=in",
        release_agi=release))
    stack.sim.add_context(ContextConfig(
        "callgate-in-device",
        agi=f"{agi}/authorize,tenant=${{TENANT}},direction=in,device=${{PHONE}}",
        release_agi=release))
    stack.sim.add_context(ContextConfig(
        "callgate-click-to-call",
        agi=f"{agi}/authorize,tenant=${{CALLGATE_TENANT}},direction=out,trunk=e1-1",
        release_agi=release))
    stack.sim.phones.add_endpoint("6003", "secret6003", caller_name="Phone 6003")
    yield Lab(stack)

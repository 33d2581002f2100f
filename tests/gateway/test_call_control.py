"""authorize/release through real FastAGI sockets, decided by limits/ on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from gateway.agi import AgiServer, Router
from gateway.call_args import decode_request
from gateway.call_control import CallControl
from gateway.metrics import Metrics
from limits import EmergencyNumbers, LimitsService
from sim.fastagi import FastAgiCall


@dataclass
class Rig:
    limits: LimitsService
    control: CallControl
    port: int

    async def call(self, route_args: str, **env: str) -> dict[str, str]:
        outcome = await FastAgiCall(
            "127.0.0.1", self.port, route_args.split(",")[0],
            env_overrides={"agi_extension": env.pop("exten", "5551000"), **env},
            args=route_args.split(",")[1:],
        ).run()
        return outcome.variables


@pytest.fixture
async def rig(redis_client: aioredis.Redis) -> AsyncIterator[Rig]:
    limits = LimitsService(redis_client, "t1", emergency=EmergencyNumbers(["112", "911"]))
    control = CallControl(limits, {}, Metrics())
    router = Router()
    control.register(router)
    server = AgiServer("127.0.0.1", 0, router)
    await server.start()
    try:
        yield Rig(limits, control, server.bound_port)
    finally:
        await server.close()


async def test_tenant_outbound_limit_two_of_three(rig: Rig) -> None:
    await rig.limits.settings.set_tenant_limit("acme", "outbound", 2)
    results = await asyncio.gather(
        *(rig.call("authorize,tenant=acme,direction=out") for _ in range(3))
    )
    decisions = sorted((v["CALLGATE_RESULT"], v["CALLGATE_REASON"], v["CALLGATE_CAUSE"])
                       for v in results)
    assert decisions == [("ALLOW", "ok", "0"), ("ALLOW", "ok", "0"),
                         ("DENY", "tenant_limit", "34")]
    denied = next(v for v in results if v["CALLGATE_RESULT"] == "DENY")
    assert denied["CALLGATE_LEASE"] == ""
    # Emergency at the limit passes, and is counted.
    emergency = await rig.call("authorize,tenant=acme,direction=out,dest=112")
    assert (emergency["CALLGATE_RESULT"], emergency["CALLGATE_REASON"]) == ("ALLOW", "emergency")
    status = await rig.limits.settings.show("tenant_outbound", "acme")
    assert status.in_use == 3
    # The release route frees a slot once; a second release is a no-op.
    lease = next(v["CALLGATE_LEASE"] for v in results if v["CALLGATE_RESULT"] == "ALLOW")
    for _ in range(2):
        await rig.call(f"release,lease={lease}")
    assert (await rig.limits.settings.show("tenant_outbound", "acme")).in_use == 2


async def test_allowed_call_carries_its_request_for_reconciliation(rig: Rig) -> None:
    v = await rig.call("authorize,tenant=acme,direction=in,number=+15551230000", exten="200")
    req = decode_request(v["CALLGATE_REQUEST"])
    assert req is not None
    assert (req.tenant, req.direction.value, req.number, req.dest) == (
        "acme", "in", "+15551230000", "200")


@pytest.mark.parametrize(
    "route",
    [
        "authorize,direction=out",  # no tenant
        "authorize,tenant=acme,direction=sideways",
        "authorize,tenat=acme,direction=out",  # a typo is refused, not ignored
        "authorize,tenant=ac me,direction=out",
    ],
)
async def test_bad_arguments_deny_bad_request(rig: Rig, route: str) -> None:
    v = await rig.call(route)
    assert (v["CALLGATE_RESULT"], v["CALLGATE_REASON"], v["CALLGATE_CAUSE"]) == (
        "DENY", "bad_request", "21")
    assert await rig.limits.in_use() == {}


async def test_allow_not_delivered_gives_the_slots_back(rig: Rig) -> None:
    """The channel hangs up before it hears the decision: no slot may stay held."""
    await rig.limits.settings.set_tenant_limit("acme", "outbound", 1)
    call = FastAgiCall("127.0.0.1", rig.port, "authorize",
                       env_overrides={"agi_extension": "5551000"},
                       args=["tenant=acme", "direction=out"])
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(call.env_block())
    await writer.drain()
    await reader.readline()  # the decision command
    writer.close()  # gone before answering it
    async with asyncio.timeout(5):
        while await rig.limits.in_use():
            await asyncio.sleep(0.02)
    v = await rig.call("authorize,tenant=acme,direction=out")
    assert v["CALLGATE_RESULT"] == "ALLOW"


async def test_unknown_tenant_is_denied_over_agi_when_refused(rig: Rig) -> None:
    rig.limits.refuse_unknown_tenants = True
    v = await rig.call("authorize,tenant=acem,direction=out")
    assert (v["CALLGATE_RESULT"], v["CALLGATE_REASON"], v["CALLGATE_CAUSE"]) == (
        "DENY", "unknown_tenant", "21")
    await rig.limits.settings.set_tenant_limit("acme", "outbound", 2)
    assert (await rig.call("authorize,tenant=acme,direction=out"))["CALLGATE_RESULT"] == "ALLOW"

"""Supervisor commands over MQTT against a real Mosquitto and Redis: a command with a
supervisor's token changes the campaign's pacing (kept in its audit trail with who made
it) and is answered on the reply topic; a bad token, a wrong tenant or bad input are
refused there and change nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest
import redis.asyncio as aioredis

from dialer.campaign import Campaign, DialMode
from dialer.campaign_store import CampaignStore
from dialer.clock import SystemClock
from dialer.controls import SupervisorControls
from gateway.api import create_token, revoke_token
from gateway.mqtt_commands import MqttCommands
from tests.support.servers import MosquittoServer

SITE = "cmdtest"
ACME, GLOBEX = "acme", "globex"


class Broker:
    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.replies: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    async def command(self, path: str, body: dict[str, Any] | bytes) -> tuple[str,
                                                                              dict[str, Any]]:
        payload = body if isinstance(body, bytes) else json.dumps(body)
        await self.client.publish(f"callgate/{SITE}/cmd/{path}", payload, qos=1)
        async with asyncio.timeout(10):
            return await self.replies.get()


@pytest.fixture
async def broker(mosquitto_proc: MosquittoServer,
                 redis_client: aioredis.Redis) -> AsyncIterator[Broker]:
    commands = MqttCommands(mosquitto_proc.url, SITE, redis_client)
    commands.start()
    async with aiomqtt.Client("127.0.0.1", mosquitto_proc.port) as client:
        await client.subscribe(f"callgate/{SITE}/reply/#", qos=1)
        b = Broker(client)

        async def collect() -> None:
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes | bytearray)
                b.replies.put_nowait((str(message.topic), json.loads(payload)))

        task = asyncio.create_task(collect())
        async with asyncio.timeout(10):
            await commands.connected.wait()
        try:
            yield b
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await commands.close()


async def _campaigns(redis: aioredis.Redis) -> CampaignStore:
    store = CampaignStore(redis)
    for tenant in (ACME, GLOBEX):
        await store.put(Campaign(tenant, "spring", mode=DialMode.PREDICTIVE,
                                 agent_queue="sales", max_ratio=3.0))
    return store


async def test_a_supervisor_command_changes_pacing_and_is_answered(
        broker: Broker, redis_client: aioredis.Redis) -> None:
    store = await _campaigns(redis_client)
    token = await create_token(redis_client, SITE, ACME, "supervisor")
    topic, reply = await broker.command(f"campaign/{ACME}/spring/set", {
        "token": token, "id": "req-1", "max_ratio": 1.5, "max_abandon": 0.02})
    assert topic == f"callgate/{SITE}/reply/campaign/{ACME}/spring/set"
    assert (reply["ok"], reply["id"], reply["v"]) == (True, "req-1", 1), reply
    assert (reply["campaign"]["max_ratio"], reply["campaign"]["max_abandon"]) == (1.5, 0.02)
    stored = await store.require(ACME, "spring")
    assert (stored.max_ratio, stored.abandon_target) == (1.5, 0.02)

    _, paused = await broker.command(f"campaign/{ACME}/spring/pause", {"token": token})
    assert paused["ok"] and (await store.require(ACME, "spring")).paused
    _, resumed = await broker.command(f"campaign/{ACME}/spring/resume", {"token": token})
    assert resumed["ok"] and not (await store.require(ACME, "spring")).paused

    history = await SupervisorControls(redis_client, store, SystemClock()).history(
        ACME, "spring")
    token_id = token.split("_")[1]
    assert [(h.field, h.new) for h in history] == [
        ("paused", "0"), ("paused", "1"), ("max_ratio", "1.5"), ("abandon_target", "0.02")]
    assert {h.by for h in history} == {f"mqtt:{token_id}"}


async def test_bad_tokens_other_tenants_and_bad_input_are_refused(
        broker: Broker, redis_client: aioredis.Redis) -> None:
    store = await _campaigns(redis_client)
    acme = await create_token(redis_client, SITE, ACME, "supervisor")
    forged = "cg_0123456789abcdef_" + "0" * 64
    cases: list[tuple[str, dict[str, Any] | bytes, str, str | None]] = [
        (f"campaign/{ACME}/spring/set", {"max_ratio": 1.0}, "token_missing", None),
        (f"campaign/{ACME}/spring/set", {"token": forged, "max_ratio": 1.0},
         "token_invalid", None),
        (f"campaign/{GLOBEX}/spring/pause", {"token": acme}, "tenant_forbidden", "tenant"),
        (f"campaign/{ACME}/spring/set", {"token": acme, "max_ratio": 99}, "field_out_of_range",
         "max_ratio"),
        (f"campaign/{ACME}/spring/set", {"token": acme, "speed": 2}, "field_unknown",
         "speed"),
        (f"campaign/{ACME}/spring/set", b"{not json", "invalid_json", None),
        (f"campaign/{ACME}/autumn/pause", {"token": acme}, "campaign_not_found", None),
    ]
    for path, body, code, field in cases:
        _, reply = await broker.command(path, body)
        assert reply["ok"] is False, (path, body, reply)
        assert reply["error"]["code"] == code, (body, reply)
        assert reply["error"].get("field") == field, reply
    revoked = await create_token(redis_client, SITE, ACME, "supervisor")
    assert await revoke_token(redis_client, SITE, revoked.split("_")[1])
    _, reply = await broker.command(f"campaign/{ACME}/spring/pause", {"token": revoked})
    assert reply["error"]["code"] == "token_invalid"
    for tenant in (ACME, GLOBEX):
        c = await store.require(tenant, "spring")
        assert (c.max_ratio, c.paused) == (3.0, False)

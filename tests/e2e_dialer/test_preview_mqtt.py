"""Preview over MQTT, against a real Mosquitto: an agent's screen asks for an offer on the
command topic, sees it on the reply topic and as the `preview/offered` event, skips it
(the next lead is offered and published), accepts the next one, and the Originate to the
agent's desk phone reaches the simulated Asterisk."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiomqtt

from gateway.api import create_token
from gateway.api.resources.preview import PreviewDesk
from gateway.metrics import Metrics
from gateway.mqtt_commands import MqttCommands
from gateway.mqtt_events import MqttPublisher
from tests.e2e_dialer.conftest import SITE, TENANT, RigFactory
from tests.e2e_dialer.preview_support import (
    AGENT,
    CAMPAIGN,
    LEADS,
    agent_phone_rung_for,
    start_preview,
)
from tests.support.servers import MosquittoServer

EVENTS = f"callgate/{SITE}/events/campaign/{TENANT}/{CAMPAIGN}/preview/offered"
CMD = f"callgate/{SITE}/cmd/campaign/{TENANT}/{CAMPAIGN}/preview"
REPLY = f"callgate/{SITE}/reply/campaign/{TENANT}/{CAMPAIGN}/preview"


class Screen:
    """An agent's screen: one MQTT session for commands, replies and offer events."""

    def __init__(self, client: aiomqtt.Client, token: str) -> None:
        self.client = client
        self.token = token
        self.replies: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.offers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def collect(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            assert isinstance(payload, bytes | bytearray)
            body = json.loads(payload)
            if str(message.topic) == EVENTS:
                self.offers.put_nowait(body)
            else:
                self.replies.put_nowait((str(message.topic), body))

    async def command(self, verb: str, **fields: str) -> dict[str, Any]:
        await self.client.publish(f"{CMD}/{verb}", json.dumps(
            {"token": self.token, "id": f"{verb}-1", **fields}), qos=1)
        async with asyncio.timeout(10):
            topic, body = await self.replies.get()
        assert topic == f"{REPLY}/{verb}" and body["id"] == f"{verb}-1"
        return body

    async def next_offer_event(self) -> dict[str, Any]:
        async with asyncio.timeout(10):
            return await self.offers.get()


async def test_offer_skip_accept_over_mqtt(dialer_rig: RigFactory,
                                           mosquitto_proc: MosquittoServer) -> None:
    async with dialer_rig(20.0) as rig:
        events = MqttPublisher(mosquitto_proc.url, SITE, Metrics())
        events.start()
        setup = await start_preview(rig, mqtt=events)
        commands = MqttCommands(mosquitto_proc.url, SITE, rig.redis, rig.limits)
        commands.preview = PreviewDesk(setup.service, events, clock=rig.sim.clock.now)
        commands.start()
        token = await create_token(rig.redis, SITE, TENANT, "supervisor")
        try:
            async with aiomqtt.Client("127.0.0.1", mosquitto_proc.port) as client:
                await client.subscribe(f"callgate/{SITE}/reply/#", qos=1)
                await client.subscribe(f"callgate/{SITE}/events/campaign/{TENANT}/#", qos=1)
                screen = Screen(client, token)
                collecting = asyncio.create_task(screen.collect())
                async with asyncio.timeout(10):
                    await commands.connected.wait()
                try:
                    await _offer_skip_accept(screen, rig)
                finally:
                    collecting.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await collecting
        finally:
            await commands.close()


async def _offer_skip_accept(screen: Screen, rig: Any) -> None:
    mine = screen.token
    screen.token = await create_token(rig.redis, SITE, "globex", "supervisor")
    other = await screen.command("offer", agent=AGENT)  # another tenant's supervisor
    assert (other["ok"], other["error"]["code"]) == (False, "tenant_forbidden")
    screen.token = mine

    got = await screen.command("offer", agent=AGENT)
    assert got["ok"] is True, got
    first = got["offer"]["lead"]["phone"]
    assert first in LEADS
    published = await screen.next_offer_event()
    assert (published["kind"], published["tenant"], published["agent"]) == (
        f"campaign.{TENANT}.{CAMPAIGN}.preview.offered", TENANT, AGENT)
    assert published["lead"]["phone"] == first

    got = await screen.command("skip", agent=AGENT, lead=first)
    assert got["ok"] is True, got
    assert got["skipped"]["phone"] == first
    second = got["next"]["lead"]["phone"]
    assert second in LEADS and second != first
    assert (await screen.next_offer_event())["lead"]["phone"] == second
    assert rig.originated == []

    refused = await screen.command("accept", agent=AGENT, lead=first)
    assert (refused["ok"], refused["error"]["code"]) == (False, "offer_not_held")
    bad = await screen.command("accept", agent=AGENT)
    assert (bad["ok"], bad["error"]["field"]) == (False, "lead")

    got = await screen.command("accept", agent=AGENT, lead=second)
    assert (got["ok"], got["placed"], got["reason"]) == (True, True, "ok")
    await agent_phone_rung_for(rig, second)

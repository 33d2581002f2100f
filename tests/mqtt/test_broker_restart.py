"""The daemon's MQTT side across a broker restart: while Mosquitto is down call events
are dropped and counted in /metrics (calls are never held up), the publisher retries with
a growing delay, and once the broker is back events flow again and a supervisor's command
topic is served again, without restarting the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiomqtt

from dialer.campaign import Campaign
from dialer.campaign_store import CampaignStore
from gateway.api import create_token
from tests.mqtt.conftest import SITE, Stack
from tests.mqtt.test_daemon_events import STAY_UP, dropped, with_mqtt
from tests.support.servers import mosquitto_server, wait_port


def _restart(workdir: Path) -> subprocess.Popen[bytes]:
    """Mosquitto again on the same port, from the config the first one was given."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return subprocess.Popen([exe, "-c", str(workdir / "mosquitto.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _next_message(client: aiomqtt.Client, timeout: float = 15.0) -> aiomqtt.Message:
    async with asyncio.timeout(timeout):
        async for message in client.messages:
            return message
    raise AssertionError("no message")  # pragma: no cover


async def _call_is_published(stack: Stack, port: int) -> dict[str, Any]:
    """Place a call and wait for its call.authorized event on a fresh subscription."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(f"callgate/{SITE}/events/call/authorized", qos=1)
        call = stack.place(STAY_UP)
        assert (await stack.decided(call))["CALLGATE_RESULT"] == "ALLOW"
        message = await _next_message(client)
        stack.hang_up(call)
        assert isinstance(message.payload, bytes)
        body: dict[str, Any] = json.loads(message.payload)
        assert body["call_id"] == call.g2.linkedid
        return body


async def _command(port: int, token: str) -> dict[str, Any]:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(f"callgate/{SITE}/reply/#", qos=1)
        await client.publish(f"callgate/{SITE}/cmd/campaign/acme/spring/set",
                             json.dumps({"token": token, "max_ratio": 1.5}), qos=1)
        message = await _next_message(client)
        assert isinstance(message.payload, bytes)
        reply: dict[str, Any] = json.loads(message.payload)
        return reply


async def test_events_and_commands_flow_again_after_the_broker_restarts(
        stack: Stack, tmp_path: Path) -> None:
    await CampaignStore(stack.limits_redis).put(
        Campaign("acme", "spring", agent_queue="sales", paused=True))
    token = await create_token(stack.limits_redis, SITE, "acme", "supervisor")
    workdir = tmp_path / "broker"
    with mosquitto_server(workdir) as broker:
        with_mqtt(stack, broker.url, 8)
        daemon = await stack.start_daemon()
        assert (await _call_is_published(stack, broker.port))["tenant"] == "acme"

        broker.proc.terminate()
        await asyncio.to_thread(broker.proc.wait, 10)
        calls = [stack.place(STAY_UP) for _ in range(10)]
        decided = await asyncio.gather(*(stack.decided(c, 5.0) for c in calls))
        assert [d["CALLGATE_RESULT"] for d in decided] == ["ALLOW"] * 10
        async with asyncio.timeout(10):  # 10 decisions + 10 starts into a queue of 8
            while await asyncio.to_thread(dropped, daemon) < 20 - 8 - 1:
                await asyncio.sleep(0.1)
        for call in calls:
            stack.hang_up(call)
        async with asyncio.timeout(10):  # it keeps trying, waiting longer each time
            while len([e for e in daemon.log_events()
                       if e.get("event") == "mqtt_reconnecting"]) < 3:
                await asyncio.sleep(0.1)
        waits = [e["in_seconds"] for e in daemon.log_events()
                 if e.get("event") == "mqtt_reconnecting"]
        assert waits[0] < waits[-1]

        again = await asyncio.to_thread(_restart, workdir)
        try:
            await asyncio.to_thread(wait_port, broker.port)
            async with asyncio.timeout(30):  # the backoff is capped; it comes back
                while sum(e.get("event") == "mqtt_connected"
                          for e in daemon.log_events()) < 2:
                    await asyncio.sleep(0.1)
            lost = await asyncio.to_thread(dropped, daemon)
            assert (await _call_is_published(stack, broker.port))["tenant"] == "acme"
            async with asyncio.timeout(30):
                while sum(e.get("event") == "mqtt_commands_subscribed"
                          for e in daemon.log_events()) < 2:
                    await asyncio.sleep(0.1)
            reply = await _command(broker.port, token)
            assert reply["ok"] is True and reply["campaign"]["max_ratio"] == 1.5, reply
            # what was dropped stays counted; nothing more was lost once it was back
            assert await asyncio.to_thread(dropped, daemon) == lost
        finally:
            again.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(again.wait, 10)

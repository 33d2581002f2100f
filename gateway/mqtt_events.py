"""MQTT publisher for `callgate/<site>/events/...`.

Publishing must never slow a call decision: events go into a bounded queue that one task
drains to the broker. When the broker is away the queue fills, and what no longer fits is
dropped and counted in /metrics (callgate_mqtt_dropped) rather than blocking a call.
Money and limit events are sent with QoS 1, the rest with QoS 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import aiomqtt
import structlog

from gateway.metrics import Metrics

log = structlog.get_logger(__name__)

SCHEMA_VERSION = 1
_QOS1_PREFIXES = ("limit.", "prepaid.", "emergency", "surcharge", "call.")


@dataclass(frozen=True)
class Broker:
    """Where the broker is, from the config's `mqtt://user:pass@host:port` (mqtts: TLS)."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> Broker:
        parsed = urlparse(url)
        tls = parsed.scheme == "mqtts"
        return cls(parsed.hostname or "127.0.0.1", parsed.port or (8883 if tls else 1883),
                   parsed.username, parsed.password, tls)

    def client(self, identifier: str) -> aiomqtt.Client:
        return aiomqtt.Client(self.host, self.port, username=self.username,
                              password=self.password, identifier=identifier,
                              tls_params=aiomqtt.TLSParameters() if self.tls else None)


@dataclass(frozen=True)
class Event:
    kind: str  # e.g. "call.started", "limit.denied"; becomes the topic path
    payload: dict[str, Any]
    tenant: str | None = None


class MqttPublisher:
    def __init__(self, url: str, site: str, metrics: Metrics, queue_size: int = 10000) -> None:
        self._broker = Broker.from_url(url)
        self.site = site
        self._metrics = metrics
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.dropped = 0

    def topic(self, kind: str) -> str:
        return f"callgate/{self.site}/events/{kind.replace('.', '/')}"

    def publish(self, kind: str, payload: dict[str, Any], tenant: str | None = None) -> None:
        """Never blocks and never raises: a full queue drops the event and counts it."""
        try:
            self._queue.put_nowait(Event(kind, payload, tenant))
        except asyncio.QueueFull:
            self.dropped += 1
            self._metrics.mqtt_dropped.inc()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")

    async def close(self, flush_timeout: float = 2.0) -> None:
        if self._task is None:
            return
        if self.connected:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(flush_timeout):
                    await self._queue.join()
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def _run(self) -> None:
        delay = 0.5
        pending: Event | None = None
        while True:
            try:
                async with self._broker.client(
                    f"callgate-{self.site}-{random.getrandbits(32):08x}") as client:
                    self.connected = True
                    delay = 0.5
                    log.info("mqtt_connected", host=self._broker.host, port=self._broker.port)
                    while True:
                        event = pending or await self._queue.get()
                        pending = event
                        await client.publish(
                            self.topic(event.kind), self._encode(event), qos=self._qos(event.kind)
                        )
                        pending = None
                        self._queue.task_done()
            except aiomqtt.MqttError as exc:
                self.connected = False
                log.warning("mqtt_reconnecting", error=str(exc), in_seconds=round(delay, 2))
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 30.0)

    def _encode(self, event: Event) -> bytes:
        body = {"v": SCHEMA_VERSION, "kind": event.kind, "site": self.site, "ts": time.time(),
                **event.payload}
        if event.tenant is not None:
            body["tenant"] = event.tenant
        return json.dumps(body, separators=(",", ":")).encode()

    @staticmethod
    def _qos(kind: str) -> int:
        return 1 if kind.startswith(_QOS1_PREFIXES) else 0

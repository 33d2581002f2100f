"""Fixtures of the MQTT tests: the real stack of tests/e2e (daemon subprocess, simulated
Asterisk, real Redis), the real mosquitto of tests/conftest.py, and a subscriber that
records every message under `callgate/<site>/events/#` with the QoS it arrived with."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import pytest

from tests.e2e.conftest import SITE, Stack, redis_for_stack, stack
from tests.support.servers import MosquittoServer

__all__ = ["SITE", "Stack", "redis_for_stack", "stack"]


@dataclass(frozen=True)
class Received:
    topic: str
    qos: int
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])


@dataclass
class Subscriber:
    messages: list[Received] = field(default_factory=list)

    async def wait_for(self, match: Callable[[Received], bool], timeout: float = 10.0
                       ) -> Received:
        async with asyncio.timeout(timeout):
            while True:
                for msg in self.messages:
                    if match(msg):
                        return msg
                await asyncio.sleep(0.02)

    def of_call(self, *call_ids: str) -> list[Received]:
        return [m for m in self.messages if m.body.get("call_id") in call_ids]


@pytest.fixture
async def subscriber(mosquitto_proc: MosquittoServer) -> AsyncIterator[Subscriber]:
    sub = Subscriber()
    async with aiomqtt.Client("127.0.0.1", mosquitto_proc.port) as client:
        await client.subscribe(f"callgate/{SITE}/events/#", qos=1)

        async def collect() -> None:
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes | bytearray)
                sub.messages.append(Received(str(message.topic), int(message.qos),
                                             json.loads(payload)))

        task = asyncio.create_task(collect())
        try:
            yield sub
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

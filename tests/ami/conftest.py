"""Fixtures for the ami tests: replaying AMI servers and clients, closed after each test."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from ami.client import AmiClient, AmiSettings
from tests.ami.replay_server import ReplayAmiServer

MakeServer = Callable[..., Awaitable[ReplayAmiServer]]
MakeClient = Callable[..., AmiClient]


@pytest.fixture
async def ami_server() -> AsyncIterator[MakeServer]:
    made: list[ReplayAmiServer] = []

    async def make(**kw: Any) -> ReplayAmiServer:
        server = ReplayAmiServer(**kw)
        await server.start()
        made.append(server)
        return server

    yield make
    for server in made:
        await server.stop()


@pytest.fixture
async def ami_client() -> AsyncIterator[MakeClient]:
    made: list[AmiClient] = []

    def make(
        port: int,
        *,
        secret: str = "gateway",
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        start: bool = True,
        **settings: Any,
    ) -> AmiClient:
        options: dict[str, Any] = {
            "action_timeout": 2.0,
            "ping_interval": 30.0,
            "connect_timeout": 2.0,
            "reconnect_min": 0.01,
            "reconnect_max": 0.05,
        }
        options.update(settings)
        client = AmiClient(
            AmiSettings(
                name="pbx1",
                host="127.0.0.1",
                port=port,
                username="gateway",
                secret=secret,
                **options,
            ),
            rng=rng,
            sleep=sleep,
        )
        if start:
            client.start()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()

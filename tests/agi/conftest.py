"""Fixtures for the FastAGI tests: a real AgiServer on a loopback port, captured logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
import uvloop
from structlog.testing import LogCapture

from gateway.agi import AgiServer, Router


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Modules that set UNDER_UVLOOP_TOO also run under uvloop, the daemon's loop: it hands
    transports to protocols at other moments than asyncio does."""
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    module = getattr(item, "module", None)
    if getattr(module, "UNDER_UVLOOP_TOO", False):
        factories["uvloop"] = uvloop.new_event_loop
    return factories


class Logs:
    """Log lines the server wrote, as structlog event dicts."""

    def __init__(self) -> None:
        self.capture = LogCapture()
        self.logger: Any = structlog.wrap_logger(
            None,
            processors=[self.capture],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        )

    def events(self, name: str) -> list[MutableMapping[str, Any]]:
        return [e for e in self.capture.entries if e["event"] == name]

    def names(self) -> list[str]:
        return [e["event"] for e in self.capture.entries]


@pytest.fixture
def logs() -> Logs:
    return Logs()


ServerFactory = Callable[..., Any]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a state the code under test reaches on its own (no event to await)."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not reached within {timeout}s")


@pytest.fixture
async def agi_server(logs: Logs) -> AsyncIterator[ServerFactory]:
    """start(router, **options) -> a started AgiServer; every one is closed afterwards."""
    servers: list[AgiServer] = []

    async def start(router: Router, **options: Any) -> AgiServer:
        options.setdefault("logger", logs.logger)
        server = AgiServer("127.0.0.1", 0, router, **options)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture(scope="session")
def agi_recordings(asterisk_fixtures: Path) -> list[Path]:
    found = sorted(asterisk_fixtures.glob("*.agi.rx.txt"))
    assert found, "no FastAGI recordings"
    return found

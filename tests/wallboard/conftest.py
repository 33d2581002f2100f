"""Fixtures of the wallboard tests: the real stack of tests/e2e (daemon subprocess,
simulated Asterisk, real Redis) and a real headless Chromium driven by Playwright.

Chromium is Debian's (/usr/bin/chromium, `apt-get install chromium`); Playwright's own
browser download is never used. Without either, the browser tests are skipped saying
which one is missing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.api import create_token
from gateway.wallboard import DecisionTally, WallboardDeps, mount_wallboard
from limits import EmergencyNumbers, LimitsService
from tests.e2e.conftest import SITE, Stack, redis_for_stack, stack

__all__ = ["SITE", "Stack", "redis_for_stack", "stack"]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str | None:
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which(
        "chromium")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    exe = chromium_path()
    if exe is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; CI installs it)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    async with async_playwright() as pw:
        chrome = await pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield chrome
        finally:
            await chrome.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# -- the wallboard in-process, over the real test Redis -----------------------------------


@dataclass(frozen=True)
class Campaign:
    """The figures a campaign provider hands the wallboard (what dialer's CampaignStats
    carries); a frozen record, not a mock."""

    tenant: str
    campaign_id: str
    mode: str = "predictive"
    paused: bool = False
    abandon_rate: float = 0.025
    abandon_target: float = 0.03
    occupancy: float = 0.82
    calls_ringing: int = 5
    calls_waiting: int = 1
    calls_connected: int = 4
    agents_ready: int = 1
    agents_ringing: int = 0
    agents_talking: int = 3
    agents_wrap_up: int = 0


@dataclass(frozen=True)
class Card:
    """A prepaid account as prepaid.cards.Card carries it (money in minor units)."""

    id: str
    tenant: str
    balance: int
    held: int = 0
    currency: str = "EUR"


@dataclass
class Board:
    client: TestClient[web.Request, web.Application]
    redis: aioredis.Redis
    limits: LimitsService
    tally: DecisionTally
    campaigns: list[Campaign] = field(default_factory=list)
    cards: list[Card] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.client.make_url("/wallboard"))

    async def token(self, tenant: str, role: str) -> str:
        return await create_token(self.redis, SITE, tenant, role)

    async def snapshot(self, token: str) -> tuple[dict[str, Any], str]:
        async with self.client.get("/wallboard/snapshot", params={"token": token}) as resp:
            assert resp.status == 200, await resp.text()
            text = await resp.text()
        body: dict[str, Any] = json.loads(text)
        return body, text


@pytest.fixture
async def make_board(redis_client: aioredis.Redis) -> AsyncIterator[Callable[..., Any]]:
    """make(**WallboardDeps overrides) -> Board; providers read the Board's lists."""
    clients: list[TestClient[web.Request, web.Application]] = []
    limits = LimitsService(redis_client, SITE, emergency=EmergencyNumbers(("112",)))

    async def make(**overrides: Any) -> Board:
        tally = DecisionTally()
        holder: list[Board] = []

        async def campaigns() -> list[Campaign]:
            return holder[0].campaigns

        def cards() -> list[Card]:
            return holder[0].cards

        deps = WallboardDeps(redis=redis_client, site=SITE, limits=limits, decisions=tally,
                             campaigns=campaigns, low_cards=cards, interval=0.2)
        app = web.Application()
        mount_wallboard(app, replace(deps, **overrides))
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        holder.append(Board(client, redis_client, limits, tally))
        return holder[0]

    try:
        yield make
    finally:
        for c in clients:
            await c.close()

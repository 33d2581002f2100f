"""`callgate calls` and `callgate top`, the wallboard of a server with no browser: what
they print for a given state of the site in Redis (calls held by two tenants, a trunk,
a campaign paced by a gateway and one nobody paces), and the commands end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from rich.console import Console, RenderableType

from dialer.campaign import Campaign, DialMode
from dialer.campaign_store import CampaignStore
from gateway.campaigns.live_stats import write_stats
from gateway.cli import build_parser
from gateway.commands.calls_view import read_calls, render_calls
from gateway.commands.top import read_top, render_top
from limits import CallRequest, Direction, EmergencyNumbers, LimitsService

SITE = "viewsite"
NOW = 1_800_000_000.0


def text_of(renderable: RenderableType) -> str:
    console = Console(record=True, width=180, color_system=None)
    console.print(renderable)
    return console.export_text()


async def _site(redis: aioredis.Redis) -> LimitsService:
    limits = LimitsService(redis, SITE, emergency=EmergencyNumbers(("112",)))
    s = limits.settings
    await s.set_tenant_limit("acme", "outbound", 4)
    await s.set_tenant_limit("acme", "total", 10)
    await s.set_tenant_limit("globex", "total", 2)
    await s.set_trunk_limit("e1-1", 30, 5.0)
    for i, (tenant, dest) in enumerate((("acme", "4930123"), ("acme", "4930124"),
                                        ("globex", "4930125"), ("acme", "4930126"))):
        got = await limits.authorize(CallRequest(tenant, Direction.OUT, dest=dest,
                                                 trunk="e1-1", call_id=f"17000.{i}",
                                                 origin="ast1"))
        assert got.allowed
    store = CampaignStore(redis)
    await store.put(Campaign("acme", "spring", mode=DialMode.PREDICTIVE, agent_queue="sales",
                             abandon_target=0.03, max_ratio=2.5))
    await store.put(Campaign("globex", "quiet", agent_queue="q", paused=True))
    await write_stats(redis, "acme", "spring", {
        "dials": 120, "answer_rate": 0.3, "abandon_rate": 0.045, "agents_ready": 2,
        "agents_talking": 5, "agents_wrap_up": 1, "occupancy": 0.875})
    return limits


async def test_calls_lists_every_call_up_with_what_it_holds(
        redis_client: aioredis.Redis) -> None:
    limits = await _site(redis_client)
    shown = text_of(render_calls(await read_calls(limits, SITE, None)))
    assert "4 call(s) up" in shown
    rows = [line for line in shown.splitlines() if "17000." in line]
    assert len(rows) == 4
    assert sum(" acme " in r for r in rows) == 3 and sum(" globex " in r for r in rows) == 1
    assert "tenant/acme/outbound" in shown and "trunk/e1-1" in shown
    mine = text_of(render_calls(await read_calls(limits, SITE, "globex")))
    assert "1 call(s) up for tenant globex" in mine and "acme" not in mine


async def test_top_shows_limits_as_bars_and_campaigns_against_their_target(
        redis_client: aioredis.Redis) -> None:
    limits = await _site(redis_client)
    shown = text_of(render_top(await read_top(limits, redis_client, now=NOW)))
    acme = next(line for line in shown.splitlines() if line.strip("│ ").startswith("acme"))
    assert "[########--] 3/4" in acme and "[###-------] 3/10" in acme
    globex = next(line for line in shown.splitlines() if line.strip("│ ").startswith("globex"))
    assert "[#####-----] 1/2" in globex
    trunk = next(line for line in shown.splitlines() if "e1-1" in line)
    assert "[#---------] 4/30" in trunk and "5" in trunk
    spring = next(line for line in shown.splitlines() if "spring" in line)
    for cell in ("predictive", "running", "120", "30.0%", "4.5% !", "3.0%", "87.5%",
                 "2.5"):
        assert cell in spring, (cell, spring)
    quiet = next(line for line in shown.splitlines() if "quiet" in line)
    assert "paused" in quiet
    only = text_of(render_top(await read_top(limits, redis_client, "globex", now=NOW)))
    assert "acme" not in only and "spring" not in only and "quiet" in only


@pytest.fixture
def config_file(tmp_path: Path, redis_client: aioredis.Redis) -> Path:
    kw = redis_client.connection_pool.connection_kwargs
    path = tmp_path / "callgate.toml"
    path.write_text(f'[site]\nname = "{SITE}"\n\n[redis]\n'
                    f'url = "redis://{kw["host"]}:{kw["port"]}/0"\n')
    return path


def cli(argv: list[str]) -> int:
    """As `callgate ARGV` runs it, minus main()'s logging set-up (which would keep the
    test's captured stderr for the tests after this one)."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


async def test_the_commands_print_a_snapshot_when_not_on_a_terminal(
        redis_client: aioredis.Redis, config_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    await _site(redis_client)
    code = await asyncio.to_thread(cli, ["calls", "--config", str(config_file), "--once"])
    out = capsys.readouterr().out
    assert code == 0 and "4 call(s) up" in out
    code = await asyncio.to_thread(cli, ["top", "--config", str(config_file),
                                         "--tenant", "acme"])
    out = capsys.readouterr().out
    assert code == 0 and "spring" in out and "globex" not in out

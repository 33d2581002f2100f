"""Operator commands against a real Redis, as an operator types them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import redis.asyncio as aioredis

from limits import EmergencyNumbers, LimitsService
from tests.support.servers import RedisServer


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args[:1], "--config",
                           str(config), *args[1:]], capture_output=True, text=True, timeout=60)


def _config(tmp_path: Path, redis: RedisServer) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f'[site]\nname = "cli"\n\n[redis]\nurl = "{redis.url}"\n')
    return path


async def test_limit_set_and_show(tmp_path: Path, redis_proc: RedisServer,
                                  redis_client: aioredis.Redis) -> None:
    cfg = _config(tmp_path, redis_proc)
    done = _cli(cfg, "limit", "set", "tenant", "acme", "--inbound", "5", "--outbound", "10",
                "--total", "12", "--overflow", "surcharge", "--hard-max", "20")
    assert done.returncode == 0, done.stderr
    assert "outbound 0/10/20" in done.stdout and "policy surcharge" in done.stdout
    done = _cli(cfg, "limit", "set", "trunk", "e1-1", "--profile", "sangoma-a101-e1")
    assert done.returncode == 0 and "limit 30" in done.stdout, done.stderr
    done = _cli(cfg, "limit", "set", "pool", "dialer_seat", "--tenant", "acme", "--size", "15")
    assert done.returncode == 0, done.stderr

    limits = LimitsService(redis_client, "cli", emergency=EmergencyNumbers(["112"]))
    tenant = await limits.settings.show_tenant("acme")
    assert (tenant.inbound.limit, tenant.outbound.limit, tenant.total.limit) == (5, 10, 12)
    assert tenant.outbound.hard_max == 20 and tenant.policy.value == "surcharge"
    assert (await limits.settings.show("trunk", "e1-1")).limit == 30
    assert (await limits.settings.show("pool", "dialer_seat", tenant="acme")).limit == 15

    shown = _cli(cfg, "limit", "show")
    assert "trunk e1-1: limit 30" in shown.stdout
    assert "pool dialer_seat (tenant acme): limit 15" in shown.stdout

    bad = _cli(cfg, "limit", "set", "tenant", "bad name", "--inbound", "3")
    assert bad.returncode == 2 and "not a valid name" in bad.stderr
    unknown = _cli(cfg, "limit", "set", "trunk", "t2", "--profile", "no-such-card")
    assert unknown.returncode == 2 and "no hardware profile 'no-such-card'" in unknown.stderr


def test_token_create_list_revoke(tmp_path: Path, redis_proc: RedisServer) -> None:
    cfg = _config(tmp_path, redis_proc)
    made = _cli(cfg, "token", "create", "--tenant", "acme", "--role", "supervisor")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    token_id = token.split("_")[1]
    listed = _cli(cfg, "token", "list")
    assert token_id in listed.stdout and token.split("_")[2] not in listed.stdout
    assert _cli(cfg, "token", "revoke", token).returncode == 0
    assert token_id not in _cli(cfg, "token", "list").stdout
    assert _cli(cfg, "token", "revoke", token).returncode == 1


def test_unreachable_redis_is_one_clear_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[redis]\nurl = "redis://127.0.0.1:1/0"\nsocket_timeout = 0.5\n')
    done = _cli(cfg, "limit", "show", "tenant", "acme")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("callgate: Redis is not reachable")

"""Redis unreachable: the wallboard says so instead of failing, lets nobody in whose token
it cannot check, and an open board carries on once Redis is back."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.api import create_token
from gateway.wallboard import DecisionTally, WallboardDeps, mount_wallboard
from limits import EmergencyNumbers, LimitsService
from tests.support.servers import RedisServer
from tests.wallboard.test_wallboard_access import next_event


async def test_redis_down_is_reported_and_the_board_recovers(redis_aof: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_aof.url, socket_timeout=1.0,
                                     socket_connect_timeout=1.0)
    limits = LimitsService(client, "e2e", emergency=EmergencyNumbers(("112",)))
    await limits.settings.set_tenant_limit("acme", "total", 3)
    app = web.Application()
    mount_wallboard(app, WallboardDeps(redis=client, site="e2e", limits=limits,
                                       decisions=DecisionTally(), interval=0.2))
    token = await create_token(client, "e2e", "*", "admin")
    async with TestClient(TestServer(app)) as http:
        async with http.get("/wallboard/events", params={"token": token}) as feed:
            name, body = await next_event(feed)
            assert name is None and body["tenants"][0]["tenant"] == "acme"

            redis_aof.stop(kill=True)
            async with http.get("/wallboard", params={"token": token},
                                allow_redirects=False) as resp:
                assert resp.status == 503
                assert "did not answer" in await resp.text()
            async with http.get("/wallboard/snapshot", params={"token": token}) as resp:
                assert resp.status == 503
                assert (await resp.json())["error"]["code"] == "backend_unavailable"
            while name != "unavailable":
                name, body = await next_event(feed)
            assert "tokens" in body["errors"]

            redis_aof.start()
            async with asyncio.timeout(10):
                while name is not None:
                    name, body = await next_event(feed)
            assert body["errors"] == {} and body["tenants"][0]["counters"]["total"]["limit"] == 3
    await client.aclose()

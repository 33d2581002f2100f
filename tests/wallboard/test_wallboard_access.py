"""Who sees what on the wallboard (DESIGN invariant 4), sign-in, the live feed and its
assets, over the real test Redis and the real limits service."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

from gateway.api import revoke_token
from limits import CallRequest, Direction
from tests.wallboard.conftest import Board, Campaign, Card

Make = Callable[..., Any]


def call(tenant: str, call_id: str) -> CallRequest:
    return CallRequest(tenant, Direction.OUT, dest="4930123456", trunk="e1-1",
                       call_id=call_id, origin="ast1")


async def two_tenants(board: Board) -> None:
    """acme with 2 calls up of 4, globex with 1 of 2, both on trunk e1-1; decisions and
    campaigns and cards for both."""
    s = board.limits.settings
    await s.set_tenant_limit("acme", "total", 4)
    await s.set_tenant_limit("globex", "total", 2)
    await s.set_trunk_limit("e1-1", 30)
    for i, tenant in enumerate(("acme", "acme", "globex")):
        assert (await board.limits.authorize(call(tenant, f"1700000000.{i}"))).allowed
    for tenant, result, reason in (("acme", "ALLOW", "ok"), ("acme", "ALLOW", "ok"),
                                   ("acme", "DENY", "tenant_limit"),
                                   ("globex", "ALLOW", "ok")):
        board.tally.publish("call.authorized" if result == "ALLOW" else "limit.denied",
                            {"result": result, "reason": reason}, tenant=tenant)
    board.campaigns[:] = [Campaign("acme", "spring"), Campaign("globex", "winback")]
    board.cards[:] = [Card("acme-0001", "acme", 35), Card("globex-0009", "globex", -2)]


async def test_without_a_token_the_page_asks_for_one_and_the_feed_refuses(
        make_board: Make) -> None:
    board: Board = await make_board()
    async with board.client.get("/wallboard") as resp:
        assert resp.status == 401
        page = await resp.text()
    assert '<form method="post" action="/wallboard"' in page and "Paste an API token" in page
    for path in ("/wallboard/events", "/wallboard/snapshot",
                 "/wallboard/snapshot?token=cg_0123456789abcdef_" + "0" * 64):
        async with board.client.get(path) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "token_invalid"
    async with board.client.get("/wallboard?token=nonsense", allow_redirects=False) as resp:
        assert resp.status == 401
        assert "unknown, revoked or malformed" in await resp.text()


async def test_a_token_in_the_url_becomes_a_cookie_and_leaves_the_address_bar(
        make_board: Make) -> None:
    board: Board = await make_board()
    token = await board.token("*", "operator")
    async with board.client.get("/wallboard", params={"token": token},
                                allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/wallboard"
        cookie = resp.headers["Set-Cookie"]
    assert token in cookie
    assert re.search(r"HttpOnly", cookie, re.I) and "SameSite=Strict" in cookie
    assert "Path=/wallboard" in cookie
    async with board.client.get("/wallboard") as resp:  # the client keeps the cookie
        assert resp.status == 200
        page = await resp.text()
        csp = resp.headers["Content-Security-Policy"]
    assert 'src="/wallboard/static/wallboard.js"' in page
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    async with board.client.post("/wallboard", data={"token": "wrong"},
                                 allow_redirects=False) as resp:
        assert resp.status == 401


async def test_a_tenant_token_sees_only_its_own_tenant(make_board: Make) -> None:
    board: Board = await make_board()
    await two_tenants(board)

    site, _ = await board.snapshot(await board.token("*", "admin"))
    assert [t["tenant"] for t in site["tenants"]] == ["acme", "globex"]  # busiest first
    acme = site["tenants"][0]["counters"]["total"]
    assert (acme["in_use"], acme["limit"]) == (2, 4)
    assert [(t["trunk"], t["in_use"], t["limit"]) for t in site["trunks"]] == [("e1-1", 3, 30)]
    assert (site["decisions"]["allowed_total"], site["decisions"]["denied_total"]) == (3, 1)
    assert site["decisions"]["denied_by_reason"] == {"tenant_limit": 1}
    assert [c["campaign"] for c in site["campaigns"]] == ["spring", "winback"]
    assert [c["card"] for c in site["low_cards"]] == ["globex-0009", "acme-0001"]

    mine, text = await board.snapshot(await board.token("globex", "supervisor"))
    assert [t["tenant"] for t in mine["tenants"]] == ["globex"]
    assert mine["tenants"][0]["counters"]["total"]["in_use"] == 1
    assert mine["trunks"] is None  # trunks carry every tenant's calls
    assert (mine["decisions"]["allowed_total"], mine["decisions"]["denied_total"]) == (1, 0)
    assert [c["campaign"] for c in mine["campaigns"]] == ["winback"]
    assert [c["card"] for c in mine["low_cards"]] == ["globex-0009"]
    assert "acme" not in text


async def test_a_tenant_without_limits_or_calls_still_sees_its_own_row(make_board: Make) -> None:
    board: Board = await make_board()
    await two_tenants(board)
    body, text = await board.snapshot(await board.token("initech", "operator"))
    assert [t["tenant"] for t in body["tenants"]] == ["initech"]
    assert body["tenants"][0]["counters"]["total"] == {
        "in_use": 0, "limit": None, "hard_max": None, "surcharged": 0}
    assert body["campaigns"] == [] and body["low_cards"] == []
    assert "acme" not in text and "globex" not in text


async def test_a_reseller_sees_itself_and_its_sub_tenants(make_board: Make) -> None:
    board: Board = await make_board()
    await two_tenants(board)
    await board.limits.settings.set_reseller("globex", "resell")
    body, text = await board.snapshot(await board.token("resell", "reseller"))
    assert [t["tenant"] for t in body["tenants"]] == ["globex", "resell"]
    assert [c["campaign"] for c in body["campaigns"]] == ["winback"]
    assert "acme" not in text

    await board.limits.settings.set_reseller("globex", None)
    await asyncio.sleep(0.25)  # the next sample (interval 0.2 s) sees the move
    body, text = await board.snapshot(await board.token("resell", "reseller"))
    assert [t["tenant"] for t in body["tenants"]] == ["resell"] and "globex" not in text


async def test_sections_without_a_provider_are_hidden(make_board: Make) -> None:
    board: Board = await make_board(campaigns=None, low_cards=None, decisions=None)
    body, _ = await board.snapshot(await board.token("*", "admin"))
    assert body["campaigns"] is None and body["low_cards"] is None
    assert body["decisions"] is None
    assert body["tenants"] == [] and body["trunks"] == []


async def test_a_failing_provider_is_reported_and_the_rest_still_shown(
        make_board: Make) -> None:
    def broken() -> list[Card]:
        raise ConnectionRefusedError("prepaid store away")

    board: Board = await make_board(low_cards=broken)
    await two_tenants(board)
    body, _ = await board.snapshot(await board.token("*", "admin"))
    assert body["errors"] == {"low_cards": "could not be read: ConnectionRefusedError"}
    assert body["low_cards"] == [] and len(body["tenants"]) == 2


async def test_the_live_feed_pushes_snapshots_and_stops_when_the_token_is_revoked(
        make_board: Make) -> None:
    board: Board = await make_board()
    await two_tenants(board)
    token = await board.token("acme", "supervisor")
    async with board.client.get("/wallboard/events", params={"token": token}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        first = await next_event(resp)
        assert first[0] is None and [t["tenant"] for t in first[1]["tenants"]] == ["acme"]
        second = await next_event(resp)
        assert second[1]["at"] >= first[1]["at"]
        assert await revoke_token(board.redis, "e2e", token)
        while True:
            name, _ = await next_event(resp)
            if name == "revoked":
                break
        async with asyncio.timeout(5):
            assert (await resp.content.read()).strip() == b""  # the gateway ended it


async def next_event(resp: Any) -> tuple[str | None, dict[str, Any]]:
    name: str | None = None
    async with asyncio.timeout(5):
        while True:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                body: dict[str, Any] = json.loads(line[len("data: "):])
                return name, body


async def test_every_asset_ships_in_the_package_and_nothing_loads_from_elsewhere(
        make_board: Make) -> None:
    board: Board = await make_board()
    for name, kind in (("wallboard.js", "text/javascript"), ("chart.js", "text/javascript"),
                       ("wallboard.css", "text/css")):
        async with board.client.get(f"/wallboard/static/{name}") as resp:
            assert resp.status == 200 and resp.content_type == kind
    async with board.client.get("/wallboard/static/..%2Fview.py") as resp:
        assert resp.status == 404
    folder = resources.files("gateway.wallboard.assets")
    for item in folder.iterdir():
        if item.name.endswith((".html", ".js", ".css")):
            text = item.read_text()
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), item.name

"""The wallboard of the real daemon in a real headless Chromium, while the simulated
Asterisk places and ends calls through it: counters, bars and decision counts follow,
a tenant's token shows that tenant only, a revoked token ends its board.

Screenshot: artifacts/wallboard.png (the operator's board with calls up)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.api import create_token, revoke_token
from tests.wallboard.conftest import SITE, Stack

STAY_UP = "150"  # the simulated far end answers and stays up


async def test_wallboard_follows_calls_placed_through_the_daemon(
        browser: Any, stack: Stack, artifacts: Path) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=10_000)
    settings = stack.limits.settings
    await settings.set_tenant_limit("acme", "outbound", 3)
    await settings.set_tenant_limit("acme", "total", 4)
    await settings.set_tenant_limit("globex", "total", 2)
    await settings.set_trunk_limit("e1-1", 30)
    await stack.start_daemon()
    admin = await create_token(stack.limits_redis, SITE, "*", "admin")
    globex = await create_token(stack.limits_redis, SITE, "globex", "supervisor")
    base = f"http://127.0.0.1:{stack.http_port}/wallboard"

    board = await (await browser.new_context(viewport={"width": 1366, "height": 860})
                   ).new_page()
    reply = await board.goto(f"{base}?token={admin}")
    assert reply is not None and reply.status == 200
    assert board.url == base, "the token must not stay in the address bar"
    await expect(board.locator("#status")).to_have_attribute("data-state", "live")
    await expect(board.locator("#viewer")).to_have_text("admin · all tenants")
    acme = board.locator('article[data-tenant="acme"]')
    await expect(acme.locator('[data-counter="total"] .used')).to_have_text("0")
    await expect(acme.locator('[data-counter="total"] .limit')).to_have_text("4")
    await expect(board.locator("#campaigns-section")).to_be_visible()  # the dialer runs
    await expect(board.locator("#cards-section")).to_be_visible()  # prepaid runs too
    await expect(board.locator("#cards-section tr[data-card]")).to_have_count(0)

    calls = [stack.place(STAY_UP) for _ in range(3)] + [stack.place(STAY_UP, "globex")]
    decided = await asyncio.gather(*(stack.decided(c) for c in calls))
    assert [d["CALLGATE_RESULT"] for d in decided] == ["ALLOW"] * 4
    refused = await stack.decided(stack.place(STAY_UP))
    assert (refused["CALLGATE_RESULT"], refused["CALLGATE_REASON"]) == ("DENY", "tenant_limit")

    outbound = acme.locator('[data-counter="outbound"]')
    await expect(outbound.locator(".used")).to_have_text("3")
    await expect(outbound).to_have_attribute("data-level", "full")
    await expect(acme).to_have_attribute("data-at-limit", "true")
    assert await outbound.locator(".fill").evaluate("e => e.style.width") == "100%"
    await expect(acme.locator('[data-counter="total"] .used')).to_have_text("3")
    await expect(board.locator('article[data-tenant="globex"] [data-counter="total"] .used')
                 ).to_have_text("1")
    await expect(board.locator('[data-trunk="e1-1"] .used')).to_have_text("4")
    await expect(board.locator("#allowed-total")).to_have_text("4")
    await expect(board.locator("#denied-total")).to_have_text("1")
    await expect(board.locator('#deny-reasons [data-reason="tenant_limit"]')
                 ).to_have_text("tenant_limit 1")
    await expect(board.locator("#at-limit")).to_have_text("1")
    await board.wait_for_timeout(600)  # let the bar transitions finish for the picture
    await board.screenshot(path=artifacts / "wallboard.png", full_page=True)

    # A tenant's supervisor signs in with the form and sees globex only.
    mine = await (await browser.new_context()).new_page()
    reply = await mine.goto(base)
    assert reply is not None and reply.status == 401
    await mine.fill("#token", globex)
    await mine.click("button[type=submit]")
    await expect(mine.locator("#status")).to_have_attribute("data-state", "live")
    await expect(mine.locator("article[data-tenant]")).to_have_count(1)
    await expect(mine.locator('article[data-tenant="globex"] [data-counter="total"] .used')
                 ).to_have_text("1")
    await expect(mine.locator("#trunks-section")).to_be_hidden()
    await expect(mine.locator("#allowed-total")).to_have_text("1")
    await expect(mine.locator("#denied-total")).to_have_text("0")
    assert "acme" not in await mine.locator("main").inner_text()

    assert await revoke_token(stack.limits_redis, SITE, globex)
    await expect(mine.locator("#status")).to_have_attribute("data-state", "revoked")

    for call in calls:
        stack.hang_up(call)
    await expect(acme.locator('[data-counter="total"] .used')).to_have_text("0")
    await expect(board.locator('[data-trunk="e1-1"] .used')).to_have_text("0")
    await expect(acme).to_have_attribute("data-at-limit", "false")

"""The page itself in a real headless Chromium, against the wallboard in-process (so
every section has data): bars, chart, campaigns, cards, and a tenant's narrower view."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.wallboard.conftest import Board, Campaign, Card
from tests.wallboard.test_wallboard_access import two_tenants


async def test_every_section_renders_and_a_tenant_sees_its_own_rows(
        browser: Any, make_board: Callable[..., Any], artifacts: Path) -> None:
    from playwright.async_api import expect

    board: Board = await make_board()
    await two_tenants(board)
    board.campaigns.append(Campaign("acme", "autumn", paused=True, abandon_rate=0.041,
                                    agents_ready=0, agents_talking=0, calls_ringing=0,
                                    calls_waiting=0))
    board.cards.append(Card("acme-yen", "acme", 120, currency="JPY"))
    site = await board.token("*", "admin")

    context = await browser.new_context(viewport={"width": 1366, "height": 1000})
    page = await context.new_page()
    await page.goto(f"{board.url}?token={site}")
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    assert page.url == board.url

    acme = page.locator('[data-tenant="acme"][class="tenant"]')
    await expect(acme.locator('[data-counter="total"] .used')).to_have_text("2")
    await expect(acme.locator('[data-counter="total"] .limit')).to_have_text("4")
    assert await acme.locator('[data-counter="total"] .fill').evaluate(
        "e => e.style.width") == "50%"
    await expect(acme.locator('[data-counter="outbound"]')).to_have_count(1)  # 2 up, no limit
    await expect(acme.locator('[data-counter="inbound"]')).to_have_count(0)
    await expect(page.locator('[data-trunk="e1-1"] .used')).to_have_text("3")
    await expect(page.locator("#allowed-total")).to_have_text("3")
    await expect(page.locator("#denied-total")).to_have_text("1")
    await expect(page.locator('#deny-reasons [data-reason="tenant_limit"]')).to_be_visible()
    drawn = await page.locator("#decisions-chart").evaluate(
        "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v > 0)")
    assert drawn, "the chart canvas stayed blank"

    spring = page.locator('tr[data-campaign="spring"]')
    await expect(spring.locator(".abandon")).to_have_text("2.5% / 3.0%")
    await expect(spring.locator(".occupancy")).to_have_text("82.0%")
    await expect(spring.locator(".pacing")).to_have_text("1.50")  # 6 dialling, 4 agents
    autumn = page.locator('tr[data-campaign="autumn"]')
    await expect(autumn.locator(".paused")).to_have_text("paused")
    await expect(autumn.locator(".pacing")).to_have_text("\u2013")  # no agent staffed: a dash
    await expect(page.locator('tr[data-card="globex-0009"] .balance')).to_have_class(
        "num balance negative")
    await expect(page.locator('tr[data-card="acme-0001"] .balance')).to_contain_text("0.35")
    await expect(page.locator('tr[data-card="acme-yen"] .balance')).to_contain_text("120")
    await page.screenshot(path=artifacts / "wallboard-sections.png", full_page=True)

    mine = await (await browser.new_context()).new_page()
    await mine.goto(f"{board.url}?token={await board.token('globex', 'supervisor')}")
    await expect(mine.locator("#status")).to_have_attribute("data-state", "live")
    await expect(mine.locator("#viewer")).to_have_text("supervisor · globex")
    await expect(mine.locator("article[data-tenant]")).to_have_count(1)
    await expect(mine.locator("#trunks-section")).to_be_hidden()
    await expect(mine.locator("tr[data-campaign]")).to_have_count(1)
    await expect(mine.locator("tr[data-card]")).to_have_count(1)
    assert "acme" not in await mine.locator("main").inner_text()
    await context.close()

"""Preview over the HTTP API: an agent gets a lead offered, skips it and is offered the
next one, accepts that one, and the gateway rings the agent's desk phone (auto-answer
header of its profile) through the simulated Asterisk, then the lead. The API is the
daemon's aiohttp app on a real socket; the dialer runs as in the daemon (rig)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dialer.campaign import Campaign, DialMode
from gateway.api import ApiDeps, create_token, mount_api
from gateway.api.resources.preview import PreviewDesk
from gateway.http_api import Check, build_app
from gateway.metrics import Metrics
from tests.e2e_dialer.conftest import SITE, TENANT, DialerRig, RigFactory
from tests.e2e_dialer.preview_support import (
    AGENT,
    CAMPAIGN,
    LEADS,
    agent_phone_rung_for,
    start_preview,
)

Call = Callable[..., Any]


async def _no_checks() -> list[Check]:
    return []


@pytest.fixture
async def preview_api(dialer_rig: RigFactory) -> AsyncIterator[tuple[DialerRig, Call]]:
    async with dialer_rig(20.0) as rig:
        setup = await start_preview(rig)
        app = build_app(Metrics(), _no_checks)
        mount_api(app, ApiDeps(redis=rig.redis, site=SITE, limits=rig.limits,
                               preview=PreviewDesk(setup.service,
                                                   clock=rig.sim.clock.now)))
        client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
        await client.start_server()
        tokens: dict[str, str] = {}

        async def call(verb: str, body: dict[str, Any], *, tenant: str = TENANT,
                       campaign: str = CAMPAIGN, token_tenant: str = TENANT
                       ) -> tuple[int, Any]:
            if token_tenant not in tokens:
                tokens[token_tenant] = await create_token(rig.redis, SITE, token_tenant,
                                                          "supervisor")
            path = f"/v1/tenants/{tenant}/campaigns/{campaign}/preview/{verb}"
            async with client.post(path, data=json.dumps(body), headers={
                    "Authorization": f"Bearer {tokens[token_tenant]}",
                    "Content-Type": "application/json"}) as resp:
                return resp.status, await resp.json()

        try:
            yield rig, call
        finally:
            await client.close()


async def test_offer_skip_then_accept_rings_the_agents_phone(
        preview_api: tuple[DialerRig, Call]) -> None:
    rig, call = preview_api
    status, body = await call("offer", {"agent": AGENT})
    assert status == 200, body
    first = body["offer"]
    assert first["agent"] == AGENT and first["campaign"] == CAMPAIGN
    assert first["lead"]["phone"] in LEADS and first["lead"]["state"] == "offered"
    assert first["lead"]["fields"]["name"].startswith("Lead ")  # for the agent's screen
    # Asking again (a screen reloads) gives the same lead, not one more reserved.
    status, body = await call("offer", {"agent": AGENT})
    assert (status, body["offer"]["lead"]["phone"]) == (200, first["lead"]["phone"])

    # Skip: the lead goes back (no dial) and the next one is offered in the same answer.
    status, body = await call("skip", {"agent": AGENT, "lead": first["lead"]["phone"]})
    assert status == 200, body
    assert body["skipped"]["phone"] == first["lead"]["phone"]
    assert (body["skipped"]["state"], body["skipped"]["last_outcome"]) == ("pending",
                                                                           "skipped")
    second = body["next"]
    assert second["lead"]["phone"] in LEADS
    assert second["lead"]["phone"] != first["lead"]["phone"]
    assert rig.originated == []

    # The skipped lead is no longer the agent's to accept.
    status, body = await call("accept", {"agent": AGENT, "lead": first["lead"]["phone"]})
    assert (status, body["error"]["code"]) == (409, "offer_not_held")
    # Nor is the offered one another agent's.
    status, body = await call("accept", {"agent": "PJSIP/6002",
                                         "lead": second["lead"]["phone"]})
    assert (status, body["error"]["code"]) == (409, "offer_not_held")

    lead = second["lead"]["phone"]
    status, body = await call("accept", {"agent": AGENT, "lead": lead})
    assert status == 200, body
    assert (body["placed"], body["reason"]) == (True, "ok")
    req = await agent_phone_rung_for(rig, lead)
    assert any(k == "CALLGATE_LEASE" and v for k, v in req.variables)


async def test_preview_refusals_are_clear(preview_api: tuple[DialerRig, Call]) -> None:
    rig, call = preview_api
    status, body = await call("offer", {"agent": AGENT}, tenant="globex",
                              token_tenant=TENANT)
    assert (status, body["error"]["code"]) == (403, "tenant_forbidden")
    status, body = await call("offer", {"agent": AGENT}, campaign="nope")
    assert (status, body["error"]["code"]) == (404, "campaign_not_found")
    status, body = await call("offer", {"agent": "PJSIP/6001; rm -rf"})
    assert (status, body["error"]["field"]) == (422, "agent")
    await rig.add_campaign(Campaign(TENANT, "paced", mode=DialMode.PROGRESSIVE,
                                    agent_queue="sales"))
    status, body = await call("offer", {"agent": AGENT}, campaign="paced")
    assert (status, body["error"]["code"]) == (409, "not_preview")
    assert rig.originated == []

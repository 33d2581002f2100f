"""The real daemon (subprocess) serves the preview routes: its HTTP API reaches the
dialer it runs, and accepting an offer rings the agent's Yealink with its auto-answer
header through the simulator (the registry of the daemon matched the phone's profile)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from datetime import time
from typing import Any

import aiomqtt

from dialer.campaign import CallingWindow, Campaign, DialMode
from dialer.campaign_store import CampaignStore
from dialer.csv_import import LeadImporter
from dialer.lead_store import LeadStore
from gateway.api import create_token
from sim.dialplan import ContextConfig
from sim.farend import Dist, RandomFarEnd
from sim.originate import OriginateRequest
from tests.e2e.conftest import SITE, Stack
from tests.e2e_dialer.conftest import zones_open_and_closed
from tests.e2e_dialer.preview_support import AGENT, YEALINK_ALERT, YEALINK_T31P
from tests.support.servers import MosquittoServer

LEADS = ["+4915100000011", "+4915100000012"]


async def _call(stack: Stack, token: str, path: str, body: dict[str, Any] | None = None
                ) -> tuple[int, Any]:
    def call() -> tuple[int, Any]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{stack.http_port}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}",
                     "Content-Type": "application/json"},
            method="GET" if body is None else "POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    return await asyncio.to_thread(call)


async def test_daemon_offers_and_places_a_preview_call(stack: Stack) -> None:
    sim = stack.sim
    sim.add_context(ContextConfig("callgate-dialer", agi=""))
    sim.set_far_end(RandomFarEnd(ring=Dist.fixed(0.5), talk=Dist.fixed(2.0),
                                 answer_probability=1.0, busy_rate=0.0))
    sim.register_phone("6001", user_agent=YEALINK_T31P)
    originated: list[OriginateRequest] = []
    original = sim.dialplan.originate

    def recording(req: OriginateRequest):  # type: ignore[no-untyped-def]
        originated.append(req)
        return original(req)

    sim.dialplan.originate = recording  # type: ignore[method-assign]
    redis = stack.limits_redis
    await stack.limits.settings.set_trunk_limit("sip-out", 2)
    campaign = Campaign("acme", "desk", mode=DialMode.PREVIEW, trunk="sip-out",
                        window=CallingWindow(time(6, 0), time(18, 0)))
    await CampaignStore(redis).put(campaign)
    zone, _ = zones_open_and_closed(sim.clock.now())
    csv = stack.tmp / "leads.csv"
    csv.write_text("phone,timezone\n" + "".join(f"{p},{zone}\n" for p in LEADS))
    await LeadImporter(LeadStore(redis), sim.clock.now).import_leads(campaign, csv)
    token = await create_token(redis, SITE, "acme", "supervisor")

    operator = await create_token(redis, SITE, "*", "operator")

    await stack.start_daemon()
    async with asyncio.timeout(20):  # until the daemon's registry has matched the phone
        while (await _call(stack, operator, "/v1/devices/6001"))[1].get("profile") != \
                "yealink-t31p":
            await asyncio.sleep(0.1)
    base = "/v1/tenants/acme/campaigns/desk/preview"
    status, body = await _call(stack, token, f"{base}/offer", {"agent": AGENT})
    assert status == 200 and body["offer"] is not None, body
    lead = body["offer"]["lead"]["phone"]
    assert lead in LEADS
    status, body = await _call(stack, token, f"{base}/accept", {"agent": AGENT, "lead": lead})
    assert (status, body["placed"]) == (200, True), body
    async with asyncio.timeout(10):
        while not originated:
            await asyncio.sleep(0.05)
    [req] = originated
    assert (req.channel, req.exten) == (AGENT, lead)
    assert YEALINK_ALERT in req.variables  # auto-answer from the daemon's device registry


async def test_daemon_answers_preview_commands_and_publishes_offers(
        stack: Stack, mosquitto_proc: MosquittoServer) -> None:
    stack.config_text += f'\n[mqtt]\nurl = "{mosquitto_proc.url}"\n'
    redis = stack.limits_redis
    campaign = Campaign("acme", "desk", mode=DialMode.PREVIEW, trunk="sip-out",
                        window=CallingWindow(time(6, 0), time(18, 0)))
    await CampaignStore(redis).put(campaign)
    zone, _ = zones_open_and_closed(stack.sim.clock.now())
    csv = stack.tmp / "leads.csv"
    csv.write_text("phone,timezone\n" + "".join(f"{p},{zone}\n" for p in LEADS))
    await LeadImporter(LeadStore(redis), stack.sim.clock.now).import_leads(campaign, csv)
    token = await create_token(redis, SITE, "acme", "supervisor")
    await stack.start_daemon()

    async with aiomqtt.Client("127.0.0.1", mosquitto_proc.port) as client:
        await client.subscribe(f"callgate/{SITE}/reply/campaign/acme/desk/#", qos=1)
        await client.subscribe(f"callgate/{SITE}/events/campaign/acme/desk/#", qos=1)
        seen: dict[str, dict[str, Any]] = {}
        async with asyncio.timeout(20):
            while "reply" not in seen or "event" not in seen:
                if "reply" not in seen:  # the daemon's subscriber may not be up yet
                    await client.publish(
                        f"callgate/{SITE}/cmd/campaign/acme/desk/preview/offer",
                        json.dumps({"token": token, "agent": AGENT}), qos=1)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        async for message in client.messages:
                            payload = message.payload
                            assert isinstance(payload, bytes | bytearray)
                            topic = str(message.topic)
                            seen["reply" if "/reply/" in topic else "event"] = \
                                json.loads(payload)
                            if len(seen) == 2:
                                break
    reply, event = seen["reply"], seen["event"]
    assert reply["ok"] is True, reply
    assert reply["offer"]["lead"]["phone"] in LEADS
    assert (event["kind"], event["agent"]) == ("campaign.acme.desk.preview.offered", AGENT)
    assert event["lead"]["phone"] == reply["offer"]["lead"]["phone"]

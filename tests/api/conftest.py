"""Fixtures for the HTTP API: the daemon's real aiohttp app (health routes included) with
the API mounted, served on a real socket, over the real test Redis, a real LimitsService,
the shipped hardware profiles and a device registry fed with AMI-shaped events."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dialer.campaign import Campaign
from dialer.campaign_store import CampaignStore
from dialer.keys import CampaignKeys
from dialer.lead_store import LeadRow, LeadStore
from gateway.api import API_ROUTES, ApiDeps, LiveCall, Route, create_token, mount_api
from gateway.api.resources.preview import PreviewDesk
from gateway.campaigns import CampaignService
from gateway.devices import DeviceRegistry
from gateway.http_api import Check, build_app
from gateway.metrics import Metrics
from hw_profiles import ProfileSet, load_profiles
from limits import CallRequest, Direction, EmergencyNumbers, LimitsService
from prepaid.batches import BatchService, BatchSpec
from prepaid.clock import SystemClock
from prepaid.keys import CDR_STREAM
from prepaid.pins import PinHasher
from prepaid.rateplan_csv import parse_text
from prepaid.rateplan_store import RatePlanStore
from prepaid.rating import PlanSettings

SITE = "test"
PIN_SECRET = b"api-test-pin-secret"
PLAN = "standard"  # the example plan of the rates routes
CAMPAIGN = "spring"  # the example campaign of the campaign routes

# The tenants of every scenario: A and B are unrelated; `resell` resells to `resell-sub`
# (which resells to `resell-subsub`), `resell-other` is not beneath it.
A, B = "acme", "globex"
RESELLER, SUB, SUBSUB, OTHER = "resell", "resell-sub", "resell-subsub", "resell-other"


@dataclass
class Reply:
    status: int
    body: Any
    text: str
    headers: Any


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    app: web.Application
    redis: aioredis.Redis
    limits: LimitsService
    live: list[LiveCall]
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def routes(self) -> tuple[Route, ...]:
        return self.app[API_ROUTES]

    async def call(self, method: str, path: str, token: str | None = None, *,
                   json_body: Any = None, raw: bytes | None = None,
                   params: dict[str, str] | None = None) -> Reply:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        data = raw if raw is not None else (
            None if json_body is None else json.dumps(json_body).encode())
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.client.request(method, path, headers=headers, data=data,
                                       params=params) as resp:
            text = await resp.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            return Reply(resp.status, body, text, resp.headers)

    async def token(self, role: str, tenant: str) -> str:
        key = f"{role}@{tenant}"
        if key not in self.tokens:
            self.tokens[key] = await create_token(self.redis, SITE, tenant, role)
        return self.tokens[key]


@pytest.fixture(scope="session")
def profiles() -> ProfileSet:
    return load_profiles()


def out_call(tenant: str, call_id: str) -> CallRequest:
    return CallRequest(tenant, Direction.OUT, dest="4930123456", call_id=call_id, origin="ast1")


async def _no_checks() -> Sequence[Check]:
    return []


@pytest.fixture
async def make_api(redis_client: aioredis.Redis, profiles: ProfileSet,
                   ) -> AsyncIterator[Callable[..., Any]]:
    """make(**ApiDeps overrides) -> Api; every server is closed at the end."""
    clients: list[TestClient[web.Request, web.Application]] = []
    limits = LimitsService(redis_client, SITE, emergency=EmergencyNumbers(("112", "911")))

    async def make(**overrides: Any) -> Api:
        registry = DeviceRegistry(profiles)
        registry.handle_event({"Event": "ContactStatus", "EndpointName": "6001",
                               "AOR": "6001", "URI": "sip:6001@192.0.2.10:5060",
                               "ContactStatus": "Reachable", "RoundtripUsec": "1200",
                               "UserAgent": "Yealink SIP-T46U 108.86.0.20"})
        live: list[LiveCall] = []
        # The dialer as the daemon builds it, with no Asterisk (never started: the preview
        # routes reach its runners only for preview campaigns, which tests/e2e_dialer run).
        dialer = CampaignService(SITE, redis_client, limits, {}, Metrics())
        deps = ApiDeps(redis=redis_client, site=SITE, limits=limits, profiles=profiles,
                       devices=registry, live_calls=lambda: live, pin_secret=PIN_SECRET,
                       preview=PreviewDesk(dialer))
        deps = replace(deps, **overrides)
        app = build_app(Metrics(), _no_checks)
        mount_api(app, deps)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Api(client, app, redis_client, limits, live)

    try:
        yield make
    finally:
        for c in clients:
            await c.close()


@pytest.fixture
async def api(make_api: Callable[..., Any]) -> Api:
    made: Api = await make_api()
    return made


@pytest.fixture
async def world(api: Api) -> Api:
    """Two unrelated tenants and a reseller tree, each with limits, scopes and a live call."""
    s = api.limits.settings
    await s.set_reseller(SUB, RESELLER)
    await s.set_reseller(SUBSUB, SUB)
    for i, tenant in enumerate((A, B, RESELLER, SUB, SUBSUB, OTHER)):
        await s.set_tenant_limit(tenant, "total", 10 + i)
        await s.set_number_limit(tenant, f"+49301000{i}", 2)
        await s.set_device_limit(tenant, f"{tenant}-100", 3)
        await s.set_pool_size(tenant, f"{tenant}-seats", 4)
        decision = await api.limits.authorize(out_call(tenant, f"1700000000.{i}"))
        assert decision.allowed
        api.live.append(LiveCall("ast1", f"1700000000.{i}", decision.lease_id,
                                 (f"PJSIP/{tenant}-100-0000000{i}",), True, "100", "4930123456"))
    await s.set_trunk_limit("pri-span-1", 30)
    api.live.append(LiveCall("ast1", "1700000099.1", "", ("PJSIP/trunk-00000099",), False))
    await add_prepaid_and_dialer(api.redis, (A, B, RESELLER, SUB, SUBSUB, OTHER))
    return api


async def add_prepaid_and_dialer(client: aioredis.Redis, tenants: Sequence[str]) -> None:
    """Each tenant gets a card, a CDR of a call that ended a minute ago and a campaign
    with one lead; the site gets the example rate plan."""
    clock = SystemClock()
    plans = RatePlanStore(client, clock)
    settings = PlanSettings.from_config({"currency": "EUR"})
    await plans.save(PLAN, settings, parse_text("prefix,destination,rate\n33,France,0.05\n",
                                                settings).entries)
    batches = BatchService(client, PinHasher(PIN_SECRET), clock)
    campaigns = CampaignStore(client)
    leads = LeadStore(client)
    end_ms = int((time.time() - 60) * 1000)
    for i, tenant in enumerate(tenants):
        issued = await batches.create(BatchSpec(1, 1000, "EUR", PLAN, tenant, sold=True))
        cdr = cdr_for(tenant, issued.cards[0].number, f"cdr-{tenant}", end_ms + i)
        await client.xadd(CDR_STREAM, {"cdr": json.dumps(cdr)}, id=f"{end_ms + i}-0")
        await campaigns.put(Campaign(tenant, CAMPAIGN, agent_queue=f"{tenant}-agents"))
        await leads.import_batch(CampaignKeys(tenant, CAMPAIGN), [
            LeadRow(f"+1202555{i:04d}", ("America/New_York",), 2, time.time())])


def cdr_for(tenant: str, card: str, call_id: str, end_ms: int) -> dict[str, Any]:
    return {"session_id": f"{card}~00000000{end_ms % 10**8:08d}", "call_id": call_id,
            "account": card, "tenant": tenant, "caller": "100", "destination": "33142685300",
            "prefix": "33", "destination_name": "France", "plan": PLAN, "currency": "EUR",
            "rate": 50000, "band": "peak", "start_ms": end_ms - 70_000,
            "answer_ms": end_ms - 60_000, "end_ms": end_ms, "duration_s": 60,
            "billable_s": 60, "free_s": 0, "net": 5, "taxes": [], "total": 5, "charge": 5,
            "uncollected": 0, "balance_after": 995, "hangup_cause": 16, "ended_by": "caller",
            "emergency": False, "gateway": "gw1"}


async def redis_state(client: aioredis.Redis, *, skip: str = ":api:") -> dict[str, Any]:
    """Every key and its value (tokens left out): what a refused request must not change."""
    state: dict[str, Any] = {}
    async for key in client.scan_iter(count=1000):
        name = key.decode()
        if skip in name:
            continue
        kind = (await client.type(key)).decode()
        if kind == "hash":
            state[name] = await client.hgetall(key)
        elif kind == "zset":
            state[name] = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            state[name] = await client.smembers(key)
        elif kind == "string":
            state[name] = await client.get(key)
        elif kind == "list":
            state[name] = await client.lrange(key, 0, -1)
        else:
            state[name] = kind
    return state


def path_for(route: Route, tenant: str) -> str:
    """The route's path with {tenant} set to `tenant` and other parameters to their
    declared examples."""
    path = route.path
    for name, param in route.path_params.items():
        value = tenant if name == "tenant" else str(param.example)
        path = path.replace("{" + name + "}", value)
    return path


async def call_route(api: Api, route: Route, token: str | None, tenant: str, *,
                     params: dict[str, str] | None = None) -> Reply:
    """Call a declared route the way a client following the OpenAPI document would."""
    body = route.body_example if route.body is not None else None
    return await api.call(route.method, path_for(route, tenant), token, json_body=body,
                          params=params)

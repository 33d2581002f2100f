"""Outbound dialer campaigns: list, create, show with live figures, and the supervisor
changes (mode, abandon-rate target, max ratio, pause/resume).

A campaign id is unique within its tenant, so a campaign lives under its tenant's path:
`/v1/tenants/{tenant}/campaigns/{campaign}`. A change is written to the campaign in
Redis and applied by whichever gateway paces it at its next pacing tick; every changed
field is kept in the campaign's audit trail and logged (`campaign_changed`) with who made
it: `api:<token id>[:<token label>]`. A PATCH is checked as a whole before the first
field is written, so a request with one bad field changes nothing.

Live figures (`live`) are those the pacing gateway writes every second (null when no
gateway paces the campaign); `abandon_counts` holds the abandon-window counters Redis keeps
whether a gateway runs or not.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import time as clock_time
from typing import Any

from dialer.campaign import (
    AbandonWindow,
    CallingWindow,
    Campaign,
    CampaignError,
    DialMode,
    RetryDelays,
)
from dialer.keys import ALL_CAMPAIGNS, CampaignKeys
from dialer.redis_types import text
from dialer.window import Counter, RollingCounts
from gateway.api.access import Scope
from gateway.api.domain import Dialer, dialer, domain_errors
from gateway.api.errors import ApiError, invalid
from gateway.api.routes import ALL_ROLES, Param, Reply, RequestContext, Route
from gateway.api.schemas import TENANT_PARAM, TENANT_QUERY
from gateway.api.tokens import Role, TokenInfo
from gateway.campaigns.live_stats import read_stats

SUPERVISORS = frozenset({Role.ADMIN, Role.OPERATOR, Role.SUPERVISOR, Role.RESELLER})
CHANGES_SHOWN = 20

ID: dict[str, Any] = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,64}$",
                      "description": "1-64 of A-Z a-z 0-9 _ . -"}
CAMPAIGN_PARAM = Param(ID, "The campaign id (unique within the tenant).", "spring")
HHMM: dict[str, Any] = {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$"}
RATIO: dict[str, Any] = {"type": "number", "minimum": 1, "maximum": 20,
                         "description": "calls in flight per staffed agent, at most"}
ABANDON: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": 0.5,
                           "description": "abandon-rate target, a fraction: 0.03 = 3 %"}
MODE: dict[str, Any] = {"type": "string", "enum": [m.value for m in DialMode]}

SETTINGS_PROPS: dict[str, Any] = {
    "mode": MODE,
    "name": {"type": "string", "maxLength": 200},
    "queue": {"type": "string", "maxLength": 80,
              "description": "Asterisk queue of the agents (not for preview)"},
    "trunk": {"type": "string", "maxLength": 64},
    "dial_string": {"type": "string", "maxLength": 200,
                    "description": "channel to originate, with {number}"},
    "caller_id": {"type": "string", "maxLength": 80},
    "dial_timeout_s": {"type": "integer", "minimum": 1, "maximum": 300},
    "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
    "retry": {"type": "object", "additionalProperties": False,
              "description": "seconds before dialling again, by outcome",
              "properties": {f"{k}_s": {"type": "integer", "minimum": 0}
                             for k in ("busy", "no_answer", "failed", "machine",
                                       "abandoned", "skipped")}},
    "window": {"type": "object", "additionalProperties": False,
               "description": "calling hours in the lead's own time zone",
               "properties": {"start": HHMM, "end": HHMM,
                              "weekdays": {"type": "array", "maxItems": 7,
                                           "items": {"type": "integer", "minimum": 0,
                                                     "maximum": 6},
                                           "description": "0 = Monday"}}},
    "region": {"type": "string", "pattern": "^[A-Za-z]{2}$",
               "description": "for numbers without a country code"},
    "fallback_timezone": {"type": ["string", "null"], "maxLength": 64},
    "max_abandon": ABANDON,
    "abandon_window": {"type": "string", "enum": [w.value for w in AbandonWindow]},
    "connect_within_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 30},
    "max_ratio": RATIO,
    "max_channels": {"type": "integer", "minimum": 1, "maximum": 10_000},
    "max_cps": {"type": "number", "exclusiveMinimum": 0, "maximum": 10_000},
    "wrap_up_s": {"type": "number", "minimum": 0, "maximum": 3600},
    "paused": {"type": "boolean"},
}
CAMPAIGN: dict[str, Any] = {
    "type": "object",
    "required": ["tenant", "campaign", *SETTINGS_PROPS],
    "additionalProperties": False,
    "properties": {
        "tenant": {"type": "string"}, "campaign": {"type": "string"},
        **{k: {**v, "type": ["string", "null"]} if k == "fallback_timezone" else v
           for k, v in SETTINGS_PROPS.items()},
        "live": {"type": ["object", "null"],
                 "description": "figures from the pacing gateway, refreshed every second "
                                "(dials, answers, answer_rate, abandon_rate, agents_ready, "
                                "agents_talking, agents_wrap_up, occupancy, "
                                "talk_min_per_agent_hour, ...); null: nobody paces it"},
        "abandon_counts": {"type": "object",
                   "description": "abandon-window counters kept in Redis",
                   "properties": {"dials": {"type": "integer"},
                                  "answers": {"type": "integer"},
                                  "abandoned": {"type": "integer"},
                                  "abandon_rate": {"type": "number"}}},
        "leads": {"type": "object",
                  "properties": {"total": {"type": "integer"},
                                 "due_now": {"type": "integer"},
                                 "open": {"type": "integer"}}},
        "changes": {"type": "array", "description": "recent supervisor changes, newest "
                    "first",
                    "items": {"type": "object",
                              "properties": {"at": {"type": "number"},
                                             "by": {"type": "string"},
                                             "field": {"type": "string"},
                                             "old": {"type": "string"},
                                             "new": {"type": "string"}}}},
    },
}
CAMPAIGNS: dict[str, Any] = {
    "type": "object", "required": ["campaigns"], "additionalProperties": False,
    "properties": {"campaigns": {"type": "array", "items": CAMPAIGN}},
}
CREATE: dict[str, Any] = {
    "type": "object", "required": ["campaign"], "additionalProperties": False,
    "properties": {"campaign": ID, **SETTINGS_PROPS},
}
CHANGE: dict[str, Any] = {
    "type": "object", "minProperties": 1, "additionalProperties": False,
    "properties": {"mode": MODE, "max_abandon": ABANDON, "max_ratio": RATIO,
                   "paused": {"type": "boolean", "description": "true: pause, false: "
                              "resume"}},
}


def who(caller: TokenInfo, via: str = "api") -> str:
    return f"{via}:{caller.token_id}" + (f":{caller.label}" if caller.label else "")


def campaign_json(c: Campaign) -> dict[str, Any]:
    w, r = c.window, c.retry
    return {
        "tenant": c.tenant, "campaign": c.campaign_id, "mode": c.mode.value, "name": c.name,
        "queue": c.agent_queue, "trunk": c.trunk, "dial_string": c.dial_string,
        "caller_id": c.caller_id, "dial_timeout_s": c.dial_timeout_s,
        "max_attempts": c.max_attempts,
        "retry": {k: getattr(r, k) for k in ("busy_s", "no_answer_s", "failed_s", "machine_s",
                                             "abandoned_s", "skipped_s")},
        "window": {"start": w.start.strftime("%H:%M"), "end": w.end.strftime("%H:%M"),
                   "weekdays": sorted(w.weekdays)},
        "region": c.default_region, "fallback_timezone": c.fallback_timezone,
        "max_abandon": c.abandon_target, "abandon_window": c.abandon_window.value,
        "connect_within_s": c.connect_within_s, "max_ratio": c.max_ratio,
        "max_channels": c.max_channels, "max_cps": c.max_cps, "wrap_up_s": c.wrap_up_s,
        "paused": c.paused,
    }


async def _window(ctx: RequestContext, c: Campaign) -> dict[str, Any]:
    raw = await ctx.deps.redis.hgetall(CampaignKeys(c.tenant, c.campaign_id).window)
    counts = RollingCounts(c.abandon_window)
    counts.load((text(k), int(text(v))) for k, v in raw.items())
    now = time.time()
    live = counts.total(Counter.LIVE, now)
    abandoned = counts.total(Counter.ABANDONED, now)
    return {"dials": counts.total(Counter.DIALS, now), "answers": live,
            "abandoned": abandoned, "abandon_rate": abandoned / live if live else 0.0}


async def _full(ctx: RequestContext, c: Campaign, *, details: bool) -> dict[str, Any]:
    out = campaign_json(c)
    out["live"] = await read_stats(ctx.deps.redis, c.tenant, c.campaign_id)
    out["abandon_counts"] = await _window(ctx, c)
    if details:
        d = dialer(ctx)
        keys = CampaignKeys(c.tenant, c.campaign_id)
        out["leads"] = {"total": await d.leads.count(keys),
                        "due_now": await d.leads.due_count(keys, time.time()),
                        "open": int(await ctx.deps.redis.zcard(keys.due))}
        out["changes"] = [
            {"at": ch.at, "by": ch.by, "field": ch.field, "old": ch.old, "new": ch.new}
            for ch in await d.controls.history(c.tenant, c.campaign_id, CHANGES_SHOWN)]
    return out


async def list_campaigns(ctx: RequestContext) -> Reply:
    only = ctx.tenant_filter()
    store = dialer(ctx).campaigns
    if only is not None:
        found = await store.list(only)
    else:
        pairs = sorted(text(m).partition(":")[::2]
                       for m in await ctx.deps.redis.smembers(ALL_CAMPAIGNS))
        visible = set(await ctx.tenants.readable({t for t, _ in pairs}))
        found = []
        for tenant, cid in pairs:
            if tenant in visible and (c := await store.get(tenant, cid)) is not None:
                found.append(c)
    return Reply({"campaigns": [await _full(ctx, c, details=False) for c in found]})


async def show_campaign(ctx: RequestContext) -> Reply:
    c = await dialer(ctx).campaigns.require(ctx.path["tenant"], ctx.path["campaign"])
    return Reply(await _full(ctx, c, details=True))


def _hhmm(value: str) -> clock_time:
    hh, mm = value.split(":")
    return clock_time(int(hh), int(mm))


async def create_campaign(ctx: RequestContext) -> Reply:
    b, tenant = ctx.body, ctx.path["tenant"]
    store = dialer(ctx).campaigns
    cid = b["campaign"]
    if await store.get(tenant, cid) is not None:
        raise ApiError(409, "campaign_exists", f"campaign {cid!r} of tenant {tenant!r} "
                       f"exists; change it with PATCH", )
    mode = DialMode(b.get("mode", "progressive"))
    if mode is not DialMode.PREVIEW and not b.get("queue"):
        raise invalid("field_required", f"a {mode.value} campaign needs `queue` (its "
                      "agents' Asterisk queue)", "queue")
    if b.get("dial_string") and "{number}" not in b["dial_string"]:
        raise invalid("field_format", "dial_string must contain {number}", "dial_string")
    w = b.get("window", {})
    try:
        window = CallingWindow(_hhmm(w.get("start", "09:00")), _hhmm(w.get("end", "21:00")),
                               frozenset(w.get("weekdays", range(7))))
    except CampaignError as exc:
        raise invalid("invalid_value", str(exc), "window") from None
    campaign = Campaign(
        tenant, cid, mode=mode, name=b.get("name", ""), trunk=b.get("trunk", ""),
        dial_string=b.get("dial_string", ""), caller_id=b.get("caller_id", ""),
        agent_queue=b.get("queue", ""), dial_timeout_s=b.get("dial_timeout_s", 30),
        max_attempts=b.get("max_attempts", 3), retry=RetryDelays(**b.get("retry", {})),
        window=window, default_region=b.get("region", "US").upper(),
        fallback_timezone=b.get("fallback_timezone"),
        abandon_target=float(b.get("max_abandon", 0.03)),
        abandon_window=AbandonWindow(b.get("abandon_window", "24h")),
        connect_within_s=float(b.get("connect_within_s", 2.0)),
        max_ratio=float(b.get("max_ratio", 3.0)), max_channels=b.get("max_channels", 30),
        max_cps=float(b.get("max_cps", 5.0)), wrap_up_s=float(b.get("wrap_up_s", 10.0)),
        paused=b.get("paused", False))
    await store.put(campaign)
    ctx.log.info("api_campaign_created", tenant=tenant, campaign=cid, mode=mode.value,
                 by=who(ctx.caller))
    return Reply(await _full(ctx, campaign, details=True), status=201)


async def apply_change(d: Dialer, tenant: str, cid: str, body: dict[str, Any],
                       by: str) -> Campaign:
    """A supervisor change (a CHANGE body, already schema-checked), checked as a whole
    and then written; shared by PATCH and the MQTT command topics. ApiError if refused
    (nothing written then); CampaignNotFound if there is no such campaign."""
    current = await d.campaigns.require(tenant, cid)
    wanted: dict[str, Any] = {}
    if "mode" in body:
        wanted["mode"] = DialMode(body["mode"])
    if "max_abandon" in body:
        wanted["abandon_target"] = float(body["max_abandon"])
    if "max_ratio" in body:
        wanted["max_ratio"] = float(body["max_ratio"])
    if "paused" in body:
        wanted["paused"] = bool(body["paused"])
    if wanted.get("mode") not in (None, DialMode.PREVIEW) and not current.agent_queue:
        raise invalid("field_not_allowed", "this campaign has no agent queue: it can only "
                      "run in preview mode", "mode")
    try:
        replace(current, **wanted)  # the whole change is checked before any write
    except CampaignError as exc:
        raise invalid("invalid_value", str(exc)) from None
    c = current
    if "mode" in wanted:
        c = await d.controls.set_mode(tenant, cid, wanted["mode"], by=by)
    if "abandon_target" in wanted:
        c = await d.controls.set_abandon_target(tenant, cid, wanted["abandon_target"], by=by)
    if "max_ratio" in wanted:
        c = await d.controls.set_max_ratio(tenant, cid, wanted["max_ratio"], by=by)
    if wanted.get("paused") is True:
        c = await d.controls.pause(tenant, cid, by=by)
    elif wanted.get("paused") is False:
        c = await d.controls.resume(tenant, cid, by=by)
    return c


async def change_campaign(ctx: RequestContext) -> Reply:
    d = dialer(ctx)
    c = await apply_change(d, ctx.path["tenant"], ctx.path["campaign"], ctx.body,
                           who(ctx.caller))
    return Reply(await _full(ctx, c, details=True))


_ITEM = "/v1/tenants/{tenant}/campaigns/{campaign}"
_PATH = {"tenant": TENANT_PARAM, "campaign": CAMPAIGN_PARAM}

ROUTES = (
    Route("GET", "/v1/campaigns", "list_campaigns", "List dialer campaigns with live figures",
          "campaigns", domain_errors(list_campaigns), ALL_ROLES, Scope.FILTERED, CAMPAIGNS,
          query={"tenant": TENANT_QUERY}),
    Route("POST", "/v1/tenants/{tenant}/campaigns", "create_campaign",
          "Create a dialer campaign", "campaigns", domain_errors(create_campaign),
          SUPERVISORS, Scope.TENANT, CAMPAIGN, status=201,
          description="Defaults as `callgate campaign create`. 409 campaign_exists.",
          path_params={"tenant": TENANT_PARAM}, body=CREATE,
          body_example={"campaign": "autumn", "mode": "predictive", "queue": "sales",
                        "max_abandon": 0.03, "max_ratio": 2.5, "paused": True},
          conflict=True, tenant_writes=True),
    Route("GET", _ITEM, "get_campaign",
          "A campaign: settings, live figures, leads and recent changes", "campaigns",
          domain_errors(show_campaign), ALL_ROLES, Scope.TENANT, CAMPAIGN,
          path_params=_PATH, not_found=True),
    Route("PATCH", _ITEM, "change_campaign",
          "Change mode, abandon target, max ratio; pause or resume", "campaigns",
          domain_errors(change_campaign), SUPERVISORS, Scope.TENANT, CAMPAIGN,
          description="In force from the next pacing tick of the gateway pacing it; each "
                      "changed field is logged (campaign_changed) and kept in `changes` "
                      "with who made it.",
          path_params=_PATH, body=CHANGE, body_example={"max_abandon": 0.025, "max_ratio": 3},
          not_found=True, tenant_writes=True),
)

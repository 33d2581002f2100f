"""A campaign's leads: import from CSV (bad rows reported by line with the reason, good
rows imported, duplicates merged — as `callgate campaign import-leads`) and a paged list.

The CSV travels as the `csv` field of a JSON body (the daemon takes request bodies up to
1 MiB, about 20,000 leads a request; larger bodies answer 413 body_too_large; a million
leads go through `callgate campaign import-leads`, which streams the file).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio.cluster import RedisCluster

from dialer.csv_import import LeadImporter
from dialer.keys import CampaignKeys
from dialer.lead_store import decode_lead
from dialer.leads import Lead, LeadState
from dialer.redis_types import str_dict, text
from gateway.api.access import Scope
from gateway.api.domain import dialer, domain_errors
from gateway.api.resources.campaigns import CAMPAIGN_PARAM, SUPERVISORS, who
from gateway.api.routes import ALL_ROLES, Param, Reply, RequestContext, Route
from gateway.api.schemas import TENANT_PARAM

ERRORS_SHOWN = 1000
IMPORT: dict[str, Any] = {
    "type": "object", "required": ["csv"], "additionalProperties": False,
    "properties": {"csv": {"type": "string", "minLength": 1, "maxLength": 50_000_000,
                           "description": "a header row with a phone column (phone, "
                                          "number, msisdn...), optionally timezone; other "
                                          "columns are kept for the agent's screen"}},
}
IMPORTED: dict[str, Any] = {
    "type": "object",
    "required": ["rows", "imported", "merged", "rejected", "errors", "duplicates"],
    "additionalProperties": False,
    "properties": {
        "rows": {"type": "integer"}, "imported": {"type": "integer"},
        "merged": {"type": "integer", "description": "duplicates merged into a lead"},
        "rejected": {"type": "integer"},
        "errors": {"type": "array", "description": f"bad rows (first {ERRORS_SHOWN})",
                   "items": {"type": "object", "required": ["line", "reason"],
                             "additionalProperties": False,
                             "properties": {"line": {"type": "integer"},
                                            "reason": {"type": "string"},
                                            "detail": {"type": "string"}}}},
        "duplicates": {"type": "array",
                       "items": {"type": "object", "additionalProperties": False,
                                 "properties": {"line": {"type": "integer"},
                                                "phone": {"type": "string"},
                                                "merged_into_line": {"type": "integer"}}}},
    },
}
LEAD: dict[str, Any] = {
    "type": "object",
    "required": ["phone", "state", "attempts", "timezones"],
    "additionalProperties": False,
    "properties": {
        "phone": {"type": "string", "description": "E.164; the lead's id"},
        "state": {"type": "string", "enum": [s.value for s in LeadState]},
        "attempts": {"type": "integer"},
        "timezones": {"type": "array", "items": {"type": "string"}},
        "last_outcome": {"type": ["string", "null"]},
        "last_attempt_at": {"type": ["number", "null"]},
        "next_at": {"type": ["number", "null"]},
        "line": {"type": ["integer", "null"], "description": "CSV line it came from"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
LEADS: dict[str, Any] = {
    "type": "object", "required": ["leads", "cursor"], "additionalProperties": False,
    "properties": {"leads": {"type": "array", "items": LEAD},
                   "cursor": {"type": "integer",
                              "description": "pass as ?cursor= for the next page; 0: done"}},
}


def lead_json(lead: Lead) -> dict[str, Any]:
    return {"phone": lead.phone, "state": lead.state.value, "attempts": lead.attempts,
            "timezones": list(lead.timezones),
            "last_outcome": lead.last_outcome.value if lead.last_outcome else None,
            "last_attempt_at": lead.last_attempt_at, "next_at": lead.next_at,
            "line": lead.line, "fields": dict(lead.fields)}


def _write_temp(body: str) -> str:
    fd, name = tempfile.mkstemp(prefix="callgate-leads-", suffix=".csv")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        fh.write(body)
    return name


async def import_leads(ctx: RequestContext) -> Reply:
    d = dialer(ctx)
    campaign = await d.campaigns.require(ctx.path["tenant"], ctx.path["campaign"])
    # The importer streams a file (so the CLI handles millions of rows); hand it one.
    path = await asyncio.to_thread(_write_temp, ctx.body["csv"])
    try:
        report = await LeadImporter(d.leads, _now).import_leads(campaign, path)
    finally:
        await asyncio.to_thread(Path(path).unlink, True)
    ctx.log.info("api_leads_imported", tenant=campaign.tenant, campaign=campaign.campaign_id,
                 rows=report.rows, imported=report.imported, rejected=report.rejected,
                 by=who(ctx.caller))
    return Reply({
        "rows": report.rows, "imported": report.imported, "merged": report.merged,
        "rejected": report.rejected,
        "errors": [{"line": e.line, "reason": e.reason, "detail": e.detail}
                   for e in report.errors[:ERRORS_SHOWN]],
        "duplicates": [{"line": x.line, "phone": x.phone,
                        "merged_into_line": x.merged_into_line}
                       for x in report.duplicates[:ERRORS_SHOWN]],
    })


def _now() -> float:
    return time.time()


async def list_leads(ctx: RequestContext) -> Reply:
    d = dialer(ctx)
    campaign = await d.campaigns.require(ctx.path["tenant"], ctx.path["campaign"])
    keys = CampaignKeys(campaign.tenant, campaign.campaign_id)
    want = ctx.query.get("state")
    limit = ctx.query.get("limit", 100)
    cursor = ctx.query.get("cursor", 0)
    redis = ctx.deps.redis
    out: list[dict[str, Any]] = []
    match = keys.lead("*")

    async def add(key: bytes | str) -> None:
        raw = str_dict(await redis.hgetall(text(key)))
        if raw:
            lead = decode_lead(campaign.campaign_id, raw)
            if want is None or lead.state.value == want:
                out.append(lead_json(lead))

    if isinstance(redis, RedisCluster):  # a cursor is per node: one page, up to `limit`
        async for key in redis.scan_iter(match=match, count=1000):
            await add(key)
            if len(out) >= limit:
                break
        return Reply({"leads": out, "cursor": 0})
    while len(out) < limit:
        cursor, found = await redis.scan(cursor, match=match, count=max(100, limit))
        for key in found:
            await add(key)
        if cursor == 0:
            break
    return Reply({"leads": out, "cursor": int(cursor)})


_PATH = {"tenant": TENANT_PARAM, "campaign": CAMPAIGN_PARAM}
_LEADS = "/v1/tenants/{tenant}/campaigns/{campaign}/leads"

ROUTES = (
    Route("POST", _LEADS, "import_leads", "Import leads from CSV", "campaigns",
          domain_errors(import_leads), SUPERVISORS, Scope.TENANT, IMPORTED,
          description="Numbers are normalised to E.164 (the campaign's region for numbers "
                      "without a country code), the time zone taken from a timezone column "
                      "or the number; bad rows are reported by line and skipped, "
                      "duplicates merged. 422 leads_unreadable when the header has no "
                      "phone column (nothing imported).",
          path_params=_PATH, body=IMPORT,
          body_example={"csv": "phone,name\n+12025550123,Ada\nnot-a-number,Bob\n"},
          not_found=True, tenant_writes=True),
    Route("GET", _LEADS, "list_leads", "A campaign's leads (paged)", "campaigns",
          domain_errors(list_leads), ALL_ROLES, Scope.TENANT, LEADS, path_params=_PATH,
          query={"state": Param({"type": "string", "enum": [s.value for s in LeadState]},
                                "Only leads in this state.", "pending"),
                 "cursor": Param({"type": "integer", "minimum": 0},
                                 "From the previous page's `cursor`.", 0),
                 "limit": Param({"type": "integer", "minimum": 1, "maximum": 1000},
                                "Leads per page, about (default 100).", 100)},
          not_found=True),
)

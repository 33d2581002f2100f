"""CDR export: the prepaid call records of calls that ended in [from, to), in end-time
order, as JSON (default), JSON lines or CSV (the columns of `callgate cdr export`).

A token sees the CDRs of the tenants it may see (a reseller: its own and its
sub-tenants'); `?tenant=` narrows to one.
"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

from gateway.api.access import Scope
from gateway.api.domain import domain_errors, prepaid
from gateway.api.errors import invalid
from gateway.api.routes import ALL_ROLES, Param, Reply, RequestContext, Route
from gateway.api.schemas import TENANT_QUERY
from prepaid.cdr import CSV_COLUMNS

DAY_S = 86_400
MAX_ROWS = 100_000

EPOCH: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": 10_000_000_000}
CDR: dict[str, Any] = {
    "type": "object",
    "description": "money in minor units of `currency`; times in epoch milliseconds",
    "required": ["session_id", "call_id", "account", "tenant", "destination", "currency",
                 "end_ms", "duration_s", "charge"],
    "properties": {
        "session_id": {"type": "string"}, "call_id": {"type": "string"},
        "account": {"type": "string", "description": "the card"},
        "tenant": {"type": "string"}, "caller": {"type": "string"},
        "destination": {"type": "string"}, "prefix": {"type": "string"},
        "destination_name": {"type": "string"}, "plan": {"type": "string"},
        "currency": {"type": "string"}, "rate": {"type": "integer"},
        "band": {"type": "string"}, "start_ms": {"type": "integer"},
        "answer_ms": {"type": "integer"}, "end_ms": {"type": "integer"},
        "duration_s": {"type": "integer"}, "billable_s": {"type": "integer"},
        "free_s": {"type": "integer"}, "net": {"type": "integer"},
        "taxes": {"type": "array", "items": {"type": "array"}},
        "total": {"type": "integer"}, "charge": {"type": "integer"},
        "uncollected": {"type": "integer"}, "balance_after": {"type": "integer"},
        "hangup_cause": {"type": "integer"}, "ended_by": {"type": "string"},
        "emergency": {"type": "boolean"}, "gateway": {"type": "string"},
    },
}
CDRS: dict[str, Any] = {
    "type": "object", "required": ["from", "to", "cdrs", "truncated"],
    "additionalProperties": False,
    "properties": {
        "from": {"type": "integer"}, "to": {"type": "integer"},
        "cdrs": {"type": "array", "items": CDR},
        "truncated": {"type": "boolean",
                      "description": f"more than {MAX_ROWS} CDRs: ask a shorter range"},
    },
}


async def export_cdrs(ctx: RequestContext) -> Reply:
    now = int(time.time())
    end = ctx.query.get("to", now + 1)
    start = ctx.query.get("from", end - DAY_S)
    if end <= start:
        raise invalid("field_out_of_range", "`to` must be after `from`", "to")
    fmt = ctx.query.get("format", "json")
    only = ctx.tenant_filter()
    rows: list[dict[str, Any]] = []
    lines: list[str] = []
    out = io.StringIO()
    writer = csv.writer(out)
    if fmt == "csv":
        writer.writerow(CSV_COLUMNS)
    truncated = False
    n = 0
    async for cdr in prepaid(ctx).cdrs.iter_range(start, end, only):
        if only is None and not await ctx.tenants.may_read(cdr.tenant):
            continue
        if n >= MAX_ROWS:
            truncated = True
            break
        n += 1
        if fmt == "csv":
            writer.writerow(cdr.csv_row())
        elif fmt == "jsonl":
            lines.append(json.dumps(cdr.to_dict(), separators=(",", ":")))
        else:
            rows.append(cdr.to_dict())
    ctx.log.info("api_cdr_export", tenant=only, start=start, end=end, format=fmt,
                 rows=n, truncated=truncated)
    if fmt == "csv":
        return Reply(None, text=out.getvalue(), content_type="text/csv")
    if fmt == "jsonl":
        return Reply(None, text="".join(x + "\n" for x in lines),
                     content_type="application/x-ndjson")
    return Reply({"from": start, "to": end, "cdrs": rows, "truncated": truncated})


ROUTES = (
    Route("GET", "/v1/cdrs", "export_cdrs", "Export prepaid CDRs of a time range", "cdrs",
          domain_errors(export_cdrs), ALL_ROLES, Scope.FILTERED, CDRS,
          description="Calls that ended in [from, to) (epoch seconds; default the last 24 "
                      "hours). ?format=csv answers text/csv with the columns of `callgate "
                      "cdr export`, ?format=jsonl one JSON object a line "
                      f"(application/x-ndjson). At most {MAX_ROWS} CDRs per request.",
          query={"tenant": TENANT_QUERY,
                 "from": Param(EPOCH, "Start, epoch seconds (inclusive).", 1_800_000_000),
                 "to": Param(EPOCH, "End, epoch seconds (exclusive).", 1_800_086_400),
                 "format": Param({"type": "string", "enum": ["json", "jsonl", "csv"]},
                                 "Answer format (default json).", "json")},
          media=("text/csv", "application/x-ndjson")),
)

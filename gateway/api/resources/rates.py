"""Rate plans: the site's price lists (no tenant owns one; cards name the plan they use).

A plan is imported from CSV (the columns of prepaid.rateplan_csv) sent as the `csv` field
of a JSON body, with its plan-wide settings (currency, time bands, taxes...) beside it. A
bad row is reported with its line and skipped, the good rows are imported (as `callgate
rate import`); `strict: true` imports nothing when any row is bad, and a file with no
usable row changes nothing.
"""

from __future__ import annotations

from typing import Any

from gateway.api.access import Scope
from gateway.api.domain import domain_errors, prepaid
from gateway.api.errors import invalid
from gateway.api.resources.limits_scopes import SITE_CHANGERS
from gateway.api.routes import ALL_ROLES, Param, Reply, RequestContext, Route
from gateway.api.schemas import NAME
from prepaid.errors import BadInput
from prepaid.money import format_amount, format_rate
from prepaid.rateplan_csv import parse_text
from prepaid.rateplan_store import PlanInfo
from prepaid.rating import PlanSettings

MAX_ERRORS = 200

PLAN_PARAM = Param(NAME, "The rate plan.", "standard")
PLAN: dict[str, Any] = {
    "type": "object",
    "required": ["plan", "version", "currency", "rows", "imported"],
    "additionalProperties": False,
    "properties": {
        "plan": {"type": "string"}, "version": {"type": "integer"},
        "currency": {"type": "string"}, "rows": {"type": "integer"},
        "imported": {"type": "number", "description": "epoch seconds"},
        "lookup": {"type": ["object", "null"],
                   "description": "with ?lookup=: the row the number matches (longest "
                                  "prefix); null: no route",
                   "properties": {
                       "number": {"type": "string"}, "prefix": {"type": "string"},
                       "destination": {"type": "string"},
                       "rate_per_minute": {"type": "string"},
                       "band_rates": {"type": "object",
                                      "additionalProperties": {"type": "string"}},
                       "connection_fee": {"type": "string"},
                       "increments": {"type": "string"},
                       "min_duration": {"type": "integer"}, "grace": {"type": "integer"}}},
    },
}
PLANS: dict[str, Any] = {
    "type": "object", "required": ["plans"], "additionalProperties": False,
    "properties": {"plans": {"type": "array", "items": PLAN}},
}
IMPORT: dict[str, Any] = {
    "type": "object", "required": ["settings", "csv"], "additionalProperties": False,
    "properties": {
        "settings": {"type": "object",
                     "description": "plan-wide settings as in `callgate rate import "
                                    "--settings`: currency (required), timezone, "
                                    "default_band, bands, taxes, bundle, warn_seconds, "
                                    "warn_to, low_balance"},
        "csv": {"type": "string", "minLength": 1, "maxLength": 20_000_000,
                "description": "prefix,destination,rate[,rate_<band>,connection_fee,"
                               "increments,min_duration,grace]"},
        "strict": {"type": "boolean", "description": "any bad row: import nothing"},
        "dry_run": {"type": "boolean", "description": "check only, import nothing"},
    },
}
ROW_ERRORS: dict[str, Any] = {
    "type": "array", "items": {
        "type": "object", "required": ["line", "reason"], "additionalProperties": False,
        "properties": {"line": {"type": "integer"}, "reason": {"type": "string"}}},
}
IMPORTED: dict[str, Any] = {
    "type": "object",
    "required": ["plan", "imported", "version", "rows", "rejected", "errors"],
    "additionalProperties": False,
    "properties": {
        "plan": {"type": "string"},
        "imported": {"type": "boolean", "description": "false: dry run"},
        "version": {"type": ["integer", "null"]},
        "rows": {"type": "integer", "description": "prefixes kept"},
        "rejected": {"type": "integer"},
        "errors": {**ROW_ERRORS, "description": f"bad rows (first {MAX_ERRORS})"},
    },
}


def plan_json(info: PlanInfo) -> dict[str, Any]:
    return {"plan": info.name, "version": info.version, "currency": info.currency,
            "rows": info.rows, "imported": info.imported_ms / 1000}


async def list_plans(ctx: RequestContext) -> Reply:
    plans = prepaid(ctx).plans
    return Reply({"plans": [plan_json(await plans.info(n)) for n in await plans.names()]})


async def show_plan(ctx: RequestContext) -> Reply:
    plans = prepaid(ctx).plans
    name = ctx.path["plan"]
    body = plan_json(await plans.info(name))
    number = ctx.query.get("lookup")
    if number is not None:
        plan = await plans.load(name)
        entry = plan.lookup(number)
        cur = plan.settings.currency
        body["lookup"] = None if entry is None else {
            "number": number, "prefix": entry.prefix, "destination": entry.destination,
            "rate_per_minute": format_rate(entry.rate, cur),
            "band_rates": {b: format_rate(r, cur) for b, r in entry.band_rates},
            "connection_fee": format_amount(entry.connection_fee, cur),
            "increments": f"{entry.initial}/{entry.subsequent}",
            "min_duration": entry.min_duration, "grace": entry.grace}
    return Reply(body)


async def import_plan(ctx: RequestContext) -> Reply:
    name, body = ctx.path["plan"], ctx.body
    try:
        settings = PlanSettings.from_config(body["settings"])
    except (BadInput, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise invalid("invalid_settings", f"plan settings: {exc}", "settings") from None
    parsed = parse_text(body["csv"], settings)
    errors = [{"line": e.line, "reason": e.reason} for e in parsed.errors[:MAX_ERRORS]]
    if not parsed.entries:
        first = f": line {errors[0]['line']}: {errors[0]['reason']}" if errors else ""
        raise invalid("no_usable_row", f"no usable row in the CSV{first}; plan {name} left "
                      "unchanged", "csv")
    if body.get("strict") and parsed.errors:
        e = parsed.errors[0]
        raise invalid("bad_rows", f"{len(parsed.errors)} bad row(s), first on line {e.line}: "
                      f"{e.reason}; strict import: plan {name} left unchanged", "csv")
    version = None
    if not body.get("dry_run"):
        info = await prepaid(ctx).plans.save(name, settings, parsed.entries)
        version = info.version
        ctx.log.info("api_rateplan_imported", plan=name, version=version,
                     rows=len(parsed.entries), rejected=len(parsed.errors),
                     by=ctx.caller.token_id)
    return Reply({"plan": name, "imported": version is not None, "version": version,
                  "rows": len(parsed.entries), "rejected": len(parsed.errors),
                  "errors": errors})


ROUTES = (
    Route("GET", "/v1/rates", "list_rate_plans", "Rate plans", "rates",
          domain_errors(list_plans), ALL_ROLES, Scope.ANY_TOKEN, PLANS),
    Route("GET", "/v1/rates/{plan}", "get_rate_plan",
          "A rate plan, and which row a number matches", "rates", domain_errors(show_plan),
          ALL_ROLES, Scope.ANY_TOKEN, PLAN, path_params={"plan": PLAN_PARAM},
          query={"lookup": Param({"type": "string", "pattern": r"^\+?[0-9]{1,20}$"},
                                 "A number to rate (E.164, '+' optional).", "33142685300")},
          not_found=True),
    Route("PUT", "/v1/rates/{plan}", "import_rate_plan",
          "Import (replace) a rate plan from CSV", "rates", domain_errors(import_plan),
          SITE_CHANGERS, Scope.SITE, IMPORTED,
          description="Gateways pick the new version up within seconds; calls up keep the "
                      "tariff they started with.",
          path_params={"plan": PLAN_PARAM}, body=IMPORT,
          body_example={"settings": {"currency": "EUR"},
                        "csv": "prefix,destination,rate\n33,France,0.05\n"
                               "331,France Paris,0.04\n"}),
)

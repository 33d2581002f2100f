"""Prepaid calling cards: batches for the printer, the list and one card, and the life
cycle an operator drives (sell, top up, block, unblock, unlock a PIN lock-out, bind a
call-shop booth phone to a card and unbind it).

Cards belong to a tenant (the call shop selling them) and live under its path. A card
named in a path that is not that tenant's answers 404 card_not_found, as one that does
not exist (invariant 4: the answer says nothing about other tenants' cards). Amounts are
given as decimal text in the card's currency ("10.00") and answered both in minor units
(integers, for scripts) and as text.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.api.access import Scope
from gateway.api.domain import domain_errors, prepaid
from gateway.api.errors import ApiError, not_found
from gateway.api.routes import ALL_ROLES, Param, Reply, RequestContext, Route
from gateway.api.schemas import NAME, OPT_NUMBER, TENANT_PARAM, TENANT_QUERY
from gateway.api.tokens import Role
from prepaid import keys
from prepaid.batches import BatchSpec
from prepaid.cards import Card, CardStatus
from prepaid.clock import SystemClock
from prepaid.control import check_warn_target
from prepaid.errors import CardNotFound
from prepaid.money import format_amount, parse_amount
from prepaid.pins import PinGuard, PinHasher

# Call shops sell their own cards: a tenant's admin/operator token changes them too.
CARD_CHANGERS = frozenset({Role.ADMIN, Role.OPERATOR, Role.RESELLER})
MAX_BATCH = 10_000  # per request (PINs come back in the answer); the CLI does 1,000,000
MAX_LISTED = 5000

CARD_ID: dict[str, Any] = {"type": "string", "pattern": keys._ID_RE.pattern,
                           "description": "the card number"}
AMOUNT: dict[str, Any] = {"type": "string", "pattern": r"^[0-9]{1,12}(\.[0-9]{1,4})?$",
                          "description": "decimal, in major units of the currency: 10.00"}
CURRENCY: dict[str, Any] = {"type": "string", "pattern": "^[A-Z]{3}$",
                            "description": "ISO 4217, e.g. EUR"}
CARD_PARAM = Param(CARD_ID, "The card number.", "400000000001")

CARD: dict[str, Any] = {
    "type": "object",
    "required": ["card", "tenant", "plan", "currency", "balance", "balance_text", "held",
                 "status", "batch", "created", "sold", "activated", "expires", "valid_days",
                 "allow", "warn_to", "blocked_reason"],
    "additionalProperties": False,
    "properties": {
        "card": {"type": "string"},
        "tenant": {"type": "string"},
        "plan": {"type": "string"},
        "currency": {"type": "string"},
        "balance": {"type": "integer", "description": "minor units available"},
        "balance_text": {"type": "string"},
        "held": {"type": "integer", "description": "minor units held by calls still up"},
        "status": {"type": "string", "enum": [s.value for s in CardStatus]},
        "batch": {"type": "string"},
        "created": {**OPT_NUMBER, "description": "epoch seconds"},
        "sold": OPT_NUMBER,
        "activated": {**OPT_NUMBER, "description": "first call"},
        "expires": {**OPT_NUMBER, "description": "null: never"},
        "valid_days": {"type": "integer", "description": "after first call; 0: no limit"},
        "allow": {"type": "array", "items": {"type": "string"},
                  "description": "destination prefixes it may call; empty: all"},
        "warn_to": {"type": ["string", "null"]},
        "blocked_reason": {"type": "string"},
        "live_calls": {"type": "integer", "description": "one card only: calls up now"},
    },
}
CARDS: dict[str, Any] = {
    "type": "object", "required": ["cards", "more"], "additionalProperties": False,
    "properties": {"cards": {"type": "array", "items": CARD},
                   "more": {"type": "boolean",
                            "description": f"more than {MAX_LISTED} matched; narrow with "
                                           "?tenant= or ?status="}},
}
NEW_BATCH: dict[str, Any] = {
    "type": "object",
    "required": ["count", "value", "currency", "plan"],
    "additionalProperties": False,
    "properties": {
        "count": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH},
        "value": {**AMOUNT, "description": "money on each card"},
        "currency": CURRENCY,
        "plan": {**NAME, "description": "rate plan (PUT /v1/rates/{plan})"},
        "expires": {"type": "integer", "minimum": 0,
                    "description": "absolute expiry, epoch seconds"},
        "valid_days": {"type": "integer", "minimum": 0, "maximum": 36500,
                       "description": "days of validity from the first call"},
        "allow": {"type": "array", "maxItems": 100,
                  "items": {"type": "string", "pattern": "^[0-9]{1,15}$"},
                  "description": "destination prefixes allowed; empty: all"},
        "warn_to": {"type": "string", "enum": ["caller", "callee", "both"]},
        "pin_length": {"type": "integer", "minimum": 4, "maximum": 20},
        "number_length": {"type": "integer", "minimum": 8, "maximum": 20},
        "sold": {"type": "boolean", "description": "usable at once (no separate sale)"},
    },
}
ISSUED: dict[str, Any] = {
    "type": "object", "required": ["batch", "tenant", "count", "cards"],
    "additionalProperties": False,
    "properties": {
        "batch": {"type": "string"}, "tenant": {"type": "string"},
        "count": {"type": "integer"},
        "cards": {"type": "array", "description": "the only time PINs are shown in clear",
                  "items": {"type": "object", "required": ["card", "pin"],
                            "additionalProperties": False,
                            "properties": {"card": {"type": "string"},
                                           "pin": {"type": "string"}}}},
    },
}
TOPUP: dict[str, Any] = {
    "type": "object", "required": ["amount", "reference"], "additionalProperties": False,
    "properties": {
        "amount": {**AMOUNT, "description": "in the card's currency"},
        "reference": {"type": "string", "minLength": 1, "maxLength": 200,
                      "description": "receipt number: a retried top-up is applied once"},
    },
}
TOPPED: dict[str, Any] = {
    "type": "object", "required": ["applied", "card"], "additionalProperties": False,
    "properties": {"applied": {"type": "boolean",
                               "description": "false: this reference was already credited"},
                   "card": CARD},
}
BLOCK: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"reason": {"type": "string", "maxLength": 200}},
}


BOOTH_ID: dict[str, Any] = {"type": "string", "pattern": keys._ID_RE.pattern,
                            "description": "the booth phone, e.g. booth-3"}
BIND: dict[str, Any] = {
    "type": "object", "required": ["device"], "additionalProperties": False,
    "properties": {"device": BOOTH_ID,
                   "hours": {"type": "number", "exclusiveMinimum": 0, "maximum": 720,
                             "description": "the binding lasts this long (default 4)"}},
}
UNBIND: dict[str, Any] = {
    "type": "object", "required": ["device"], "additionalProperties": False,
    "properties": {"device": BOOTH_ID},
}
BOOTH: dict[str, Any] = {
    "type": "object", "required": ["device", "card", "bound"], "additionalProperties": False,
    "properties": {"device": {"type": "string"}, "card": {"type": "string"},
                   "bound": {"type": "boolean"},
                   "expires": {**OPT_NUMBER, "description": "epoch seconds; bound only"}},
}
UNLOCKED: dict[str, Any] = {
    "type": "object", "required": ["was_locked", "card"], "additionalProperties": False,
    "properties": {"was_locked": {"type": "boolean",
                                  "description": "false: the card was not locked out"},
                   "card": CARD},
}


def _s(ms: int) -> float | None:
    return ms / 1000 if ms else None


def card_json(card: Card, live_calls: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "card": card.id, "tenant": card.tenant, "plan": card.plan, "currency": card.currency,
        "balance": card.balance, "balance_text": format_amount(card.balance, card.currency),
        "held": card.held, "status": card.status.value, "batch": card.batch,
        "created": _s(card.created_ms), "sold": _s(card.sold_ms),
        "activated": _s(card.activated_ms), "expires": _s(card.expires_ms),
        "valid_days": card.valid_days, "allow": list(card.allow), "warn_to": card.warn_to,
        "blocked_reason": card.blocked_reason,
    }
    if live_calls is not None:
        out["live_calls"] = live_calls
    return out


async def card_tenants(ctx: RequestContext) -> list[str]:
    """Tenants that have cards (their index keys), for site-wide and reseller lists."""
    found: set[str] = set()
    async for key in ctx.deps.redis.scan_iter(match=keys.tenant_cards("*"), count=1000):
        name = key.decode() if isinstance(key, bytes) else str(key)
        found.add(name.split("{tenant:", 1)[1].rsplit("}", 1)[0])
    return sorted(found)


async def list_cards(ctx: RequestContext) -> Reply:
    only = ctx.tenant_filter()
    tenants = [only] if only is not None else await ctx.tenants.readable(
        await card_tenants(ctx))
    status = ctx.query.get("status")
    cards = prepaid(ctx).cards
    out: list[dict[str, Any]] = []
    more = False
    for tenant in tenants:
        cursor = 0
        while True:
            cursor, page = await cards.list_by_tenant(tenant, cursor, 500)
            for card in page:
                if card.kind != "card" or (status and card.status.value != status):
                    continue
                if len(out) >= MAX_LISTED:
                    more = True
                    break
                out.append(card_json(card))
            if cursor == 0 or more:
                break
    return Reply({"cards": out, "more": more})


async def create_cards(ctx: RequestContext) -> Reply:
    b, tenant = ctx.body, ctx.path["tenant"]
    currency = b["currency"]
    spec = BatchSpec(
        count=b["count"], value=parse_amount(b["value"], currency, "value"),
        currency=currency, plan=b["plan"], tenant=tenant,
        expires_at=float(b["expires"]) if b.get("expires") else None,
        valid_days=b.get("valid_days", 0), number_length=b.get("number_length", 12),
        pin_length=b.get("pin_length", 6), allow=tuple(b.get("allow", ())),
        warn_to=check_warn_target(b["warn_to"]) if "warn_to" in b else None,
        sold=b.get("sold", False))
    spec.check()
    issued = await prepaid(ctx).batches().create(spec)
    ctx.log.info("api_cards_created", tenant=tenant, batch=issued.batch_id,
                 count=len(issued.cards), by=ctx.caller.token_id)
    return Reply({"batch": issued.batch_id, "tenant": tenant, "count": len(issued.cards),
                  "cards": [{"card": c.number, "pin": c.pin} for c in issued.cards]},
                 status=201)


async def show_card(ctx: RequestContext) -> Reply:
    cards = prepaid(ctx).cards
    card = await cards.get(ctx.path["card"], ctx.path["tenant"])
    return Reply(card_json(card, len(await cards.live_sessions(card.id))))


async def sell_card(ctx: RequestContext) -> Reply:
    card = await prepaid(ctx).cards.sell(ctx.path["card"], ctx.path["tenant"])
    ctx.log.info("api_card_sold", card=card.id, tenant=card.tenant, by=ctx.caller.token_id)
    return Reply(card_json(card))


async def block_card(ctx: RequestContext) -> Reply:
    reason = (ctx.body or {}).get("reason", "")
    card = await prepaid(ctx).cards.block(ctx.path["card"], reason, ctx.path["tenant"])
    ctx.log.info("api_card_blocked", card=card.id, tenant=card.tenant, reason=reason,
                 by=ctx.caller.token_id)
    return Reply(card_json(card))


async def unblock_card(ctx: RequestContext) -> Reply:
    card = await prepaid(ctx).cards.unblock(ctx.path["card"], ctx.path["tenant"])
    ctx.log.info("api_card_unblocked", card=card.id, tenant=card.tenant,
                 by=ctx.caller.token_id)
    return Reply(card_json(card))


async def topup_card(ctx: RequestContext) -> Reply:
    cards = prepaid(ctx).cards
    tenant, account = ctx.path["tenant"], ctx.path["card"]
    card = await cards.get(account, tenant)
    amount = parse_amount(ctx.body["amount"], card.currency)
    res = await cards.topup(account, amount, ctx.body["reference"], tenant=tenant)
    ctx.log.info("api_card_topup", card=account, tenant=tenant, amount=amount,
                 reference=ctx.body["reference"], applied=res.applied,
                 by=ctx.caller.token_id)
    return Reply({"applied": res.applied, "card": card_json(await cards.get(account))})


async def unlock_card(ctx: RequestContext) -> Reply:
    """Lift a PIN lock-out (too many wrong PINs) and forget the failures, as `callgate
    card unlock`."""
    pp = prepaid(ctx)
    card = await pp.cards.get(ctx.path["card"], ctx.path["tenant"])
    was_locked = bool(await ctx.deps.redis.exists(keys.card_pinlock(card.id)))
    secret = ctx.deps.pin_secret
    assert secret is not None  # the route needs pin_secret
    await PinGuard(ctx.deps.redis, PinHasher(secret), SystemClock()).unlock(card.id)
    ctx.log.info("api_card_unlocked", card=card.id, tenant=card.tenant, was_locked=was_locked,
                 by=ctx.caller.token_id)
    return Reply({"was_locked": was_locked, "card": card_json(card)})


async def _booth_owner(ctx: RequestContext, device: str) -> tuple[str | None, str | None]:
    """(card, its tenant) the booth is bound to now, if any."""
    cards = prepaid(ctx).cards
    account = await cards.booth_card(device)
    if account is None:
        return None, None
    try:
        return account, (await cards.get(account)).tenant
    except CardNotFound:  # bound to a card since deleted: as good as unbound
        return account, None


async def bind_booth(ctx: RequestContext) -> Reply:
    """Booth ids are the site's (one shop's phones); a booth bound to another tenant's
    card is refused rather than taken over, so one tenant cannot move another's calls
    onto its own card."""
    cards = prepaid(ctx).cards
    tenant, device = ctx.path["tenant"], ctx.body["device"]
    card = await cards.get(ctx.path["card"], tenant)
    _, owner = await _booth_owner(ctx, device)
    if owner is not None and owner != tenant:
        raise ApiError(409, "booth_taken", f"booth {device!r} is bound to a card of another "
                       "tenant; that tenant (or the site) must unbind it first")
    ttl_s = int(float(ctx.body.get("hours", 4.0)) * 3600)
    await cards.bind_booth(device, card.id, ttl_s)
    ctx.log.info("api_booth_bound", booth=device, card=card.id, tenant=tenant, ttl_s=ttl_s,
                 by=ctx.caller.token_id)
    return Reply({"device": device, "card": card.id, "bound": True,
                  "expires": round(time.time() + ttl_s, 3)})


async def unbind_booth(ctx: RequestContext) -> Reply:
    """Only a binding to this very card is ended: a booth bound to another card (of this
    tenant or another) answers 404 booth_not_bound and stays as it is."""
    cards = prepaid(ctx).cards
    tenant, device = ctx.path["tenant"], ctx.body["device"]
    card = await cards.get(ctx.path["card"], tenant)
    account, _ = await _booth_owner(ctx, device)
    if account != card.id:
        raise not_found("booth_not_bound", f"booth {device!r} is not bound to card {card.id}")
    await cards.unbind_booth(device)
    ctx.log.info("api_booth_unbound", booth=device, card=card.id, tenant=tenant,
                 by=ctx.caller.token_id)
    return Reply({"device": device, "card": card.id, "bound": False})


_ITEM = "/v1/tenants/{tenant}/cards/{card}"
_PATH = {"tenant": TENANT_PARAM, "card": CARD_PARAM}


def _action(verb: str, summary: str, handler: Any, body: dict[str, Any] | None = None,
            example: Any = None, response: dict[str, Any] = CARD,
            needs: tuple[str, ...] = (), name: str = "") -> Route:
    return Route("POST", f"{_ITEM}/{verb}", name or f"{verb}_card", summary, "cards",
                 domain_errors(handler), CARD_CHANGERS, Scope.TENANT, response,
                 path_params=_PATH, body=body, body_example=example, not_found=True,
                 conflict=True, tenant_writes=True, needs=needs)


ROUTES = (
    Route("GET", "/v1/cards", "list_cards", "List prepaid cards", "cards",
          domain_errors(list_cards), ALL_ROLES, Scope.FILTERED, CARDS,
          query={"tenant": TENANT_QUERY,
                 "status": Param({"type": "string", "enum": [s.value for s in CardStatus]},
                                 "Only cards in this state.", "sold")}),
    Route("POST", "/v1/tenants/{tenant}/cards", "create_cards",
          "Create a batch of cards (numbers and PINs for the printer)", "cards",
          domain_errors(create_cards), CARD_CHANGERS, Scope.TENANT, ISSUED, status=201,
          description=f"At most {MAX_BATCH} cards per request; the PINs are in this answer "
                      "only (Redis keeps their keyed hash). Larger batches: `callgate card "
                      "create`.",
          path_params={"tenant": TENANT_PARAM}, body=NEW_BATCH,
          body_example={"count": 2, "value": "10.00", "currency": "EUR",
                        "plan": "standard"},
          needs=("pin_secret",), tenant_writes=True),
    Route("GET", _ITEM, "get_card", "One card: state, balance, live calls", "cards",
          domain_errors(show_card), ALL_ROLES, Scope.TENANT, CARD, path_params=_PATH,
          not_found=True),
    _action("sell", "Mark a card sold: it may call", sell_card),
    _action("block", "Block a card: its calls stop at their next debit", block_card,
            BLOCK, {"reason": "stolen"}),
    _action("unblock", "Return a blocked card to use", unblock_card),
    _action("topup", "Add money to a card (once per reference)", topup_card, TOPUP,
            {"amount": "5.00", "reference": "R-1001"}, TOPPED),
    _action("unlock", "Lift a PIN lock-out (too many wrong PINs)", unlock_card,
            response=UNLOCKED, needs=("pin_secret",)),
    _action("bind", "Charge a call-shop booth phone's calls to this card", bind_booth,
            BIND, {"device": "booth-3", "hours": 4}, BOOTH, name="bind_booth"),
    _action("unbind", "End a booth phone's binding to this card", unbind_booth,
            UNBIND, {"device": "booth-3"}, BOOTH, name="unbind_booth"),
)

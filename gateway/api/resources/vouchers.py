"""Top-up vouchers: a batch of single-use codes for a tenant, and redeeming one onto a
card of that tenant. Codes are in the creating answer only (Redis keeps their keyed hash).
A refused redemption answers 422 with code `voucher_<why>` and changes nothing."""

from __future__ import annotations

from typing import Any

from gateway.api.access import Scope
from gateway.api.domain import domain_errors, prepaid
from gateway.api.errors import invalid
from gateway.api.resources.cards import (
    AMOUNT,
    CARD,
    CARD_CHANGERS,
    CARD_PARAM,
    CURRENCY,
    card_json,
)
from gateway.api.routes import Reply, RequestContext, Route
from gateway.api.schemas import TENANT_PARAM
from prepaid.money import parse_amount
from prepaid.vouchers import RedeemStatus

MAX_VOUCHERS = 10_000

NEW_VOUCHERS: dict[str, Any] = {
    "type": "object", "required": ["count", "value", "currency"],
    "additionalProperties": False,
    "properties": {
        "count": {"type": "integer", "minimum": 1, "maximum": MAX_VOUCHERS},
        "value": AMOUNT,
        "currency": CURRENCY,
        "expires": {"type": "integer", "minimum": 0, "description": "epoch seconds"},
    },
}
ISSUED: dict[str, Any] = {
    "type": "object", "required": ["batch", "tenant", "count", "codes"],
    "additionalProperties": False,
    "properties": {"batch": {"type": "string"}, "tenant": {"type": "string"},
                   "count": {"type": "integer"},
                   "codes": {"type": "array", "items": {"type": "string"},
                             "description": "the only time codes are shown"}},
}
REDEEM: dict[str, Any] = {
    "type": "object", "required": ["code"], "additionalProperties": False,
    "properties": {"code": {"type": "string", "minLength": 1, "maxLength": 40,
                            "description": "the voucher code (spaces and dashes ignored)"}},
}
REDEEMED: dict[str, Any] = {
    "type": "object", "required": ["amount", "card"], "additionalProperties": False,
    "properties": {"amount": {"type": "integer", "description": "minor units added"},
                   "card": CARD},
}
_WHY = {
    RedeemStatus.ALREADY_REDEEMED: "this voucher was already redeemed onto this card",
    RedeemStatus.USED: "this voucher was already used",
    RedeemStatus.UNKNOWN: "no such voucher",
    RedeemStatus.EXPIRED: "this voucher has expired",
    RedeemStatus.WRONG_TENANT: "no such voucher",  # another tenant's: say nothing more
    RedeemStatus.WRONG_CURRENCY: "the voucher is in another currency than the card",
    RedeemStatus.CARD_REFUSED: "the card is missing, blocked or expired",
}


async def create_vouchers(ctx: RequestContext) -> Reply:
    b, tenant = ctx.body, ctx.path["tenant"]
    issued = await prepaid(ctx).vouchers().create_batch(
        b["count"], parse_amount(b["value"], b["currency"], "value"), b["currency"], tenant,
        float(b["expires"]) if b.get("expires") else None)
    ctx.log.info("api_vouchers_created", tenant=tenant, batch=issued.batch_id,
                 count=len(issued.codes), by=ctx.caller.token_id)
    return Reply({"batch": issued.batch_id, "tenant": tenant, "count": len(issued.codes),
                  "codes": issued.codes}, status=201)


async def redeem(ctx: RequestContext) -> Reply:
    pp = prepaid(ctx)
    tenant, account = ctx.path["tenant"], ctx.path["card"]
    await pp.cards.get(account, tenant)  # 404 for another tenant's card
    res = await pp.vouchers().redeem(ctx.body["code"], account, tenant)
    ctx.log.info("api_voucher_redeem", card=account, tenant=tenant, result=res.status.value,
                 by=ctx.caller.token_id)
    if res.status is not RedeemStatus.OK:
        status = (RedeemStatus.UNKNOWN if res.status is RedeemStatus.WRONG_TENANT
                  else res.status)
        raise invalid(f"voucher_{status.value}", _WHY[res.status], "code")
    return Reply({"amount": res.amount, "card": card_json(await pp.cards.get(account))})


ROUTES = (
    Route("POST", "/v1/tenants/{tenant}/vouchers", "create_vouchers",
          "Create a batch of top-up vouchers", "vouchers", domain_errors(create_vouchers),
          CARD_CHANGERS, Scope.TENANT, ISSUED, status=201,
          description="Only the tenant's cards may redeem them.",
          path_params={"tenant": TENANT_PARAM}, body=NEW_VOUCHERS,
          body_example={"count": 2, "value": "5.00", "currency": "EUR"},
          needs=("pin_secret",), tenant_writes=True),
    Route("POST", "/v1/tenants/{tenant}/cards/{card}/redeem", "redeem_voucher",
          "Redeem a voucher onto a card", "vouchers", domain_errors(redeem), CARD_CHANGERS,
          Scope.TENANT, REDEEMED,
          description="422 voucher_used / voucher_unknown / voucher_expired / "
                      "voucher_already_redeemed / voucher_wrong_currency / "
                      "voucher_card_refused; nothing is credited then.",
          path_params={"tenant": TENANT_PARAM, "card": CARD_PARAM}, body=REDEEM,
          body_example={"code": "12345678901234"}, needs=("pin_secret",), not_found=True,
          tenant_writes=True),
)

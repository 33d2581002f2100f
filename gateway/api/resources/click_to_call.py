"""`POST /v1/calls/click-to-call`: ring the user's desk phone (auto-answer), then dial.

Site-wide tokens only (admin, operator): the device registry knows endpoints, not which
tenant owns them, so a tenant token could otherwise ring another tenant's phone. The
tenant named in the body is the one the call counts against (its dialplan `authorize`).
"""

from __future__ import annotations

from typing import Any

from gateway.api.access import Scope
from gateway.api.errors import invalid, not_found, unavailable
from gateway.api.resources.limits_scopes import SITE_CHANGERS
from gateway.api.routes import Reply, RequestContext, Route
from gateway.api.schemas import NAME
from gateway.devices.dialing import ClickToCallError

BODY: dict[str, Any] = {
    "type": "object",
    "required": ["tenant", "device", "dest"],
    "additionalProperties": False,
    "properties": {
        "tenant": {**NAME, "description": "the tenant the call counts against"},
        "device": {"type": "string", "minLength": 1, "maxLength": 64,
                   "description": "the user's desk phone (PJSIP endpoint, GET /v1/devices)"},
        "dest": {"type": "string", "minLength": 1, "maxLength": 64,
                 "pattern": "^[0-9A-Za-z+*#]+$", "description": "the number to call"},
        "caller_id": {"type": "string", "maxLength": 80,
                      "description": "shown on the phone while it rings"},
        "context": {"type": "string", "maxLength": 80, "pattern": "^[A-Za-z0-9_.-]+$",
                    "description": "dialplan context the answered phone runs `dest` in "
                                   "(default callgate-click-to-call)"},
    },
}
PLACED: dict[str, Any] = {
    "type": "object",
    "required": ["tenant", "device", "profile", "dest", "context", "asterisk", "channel_id",
                 "auto_answer_headers"],
    "additionalProperties": False,
    "properties": {
        "tenant": {"type": "string"},
        "device": {"type": "string"},
        "profile": {"type": "string", "description": "the phone's hardware profile"},
        "dest": {"type": "string"},
        "context": {"type": "string"},
        "asterisk": {"type": "string"},
        "channel_id": {"type": "string",
                       "description": "Uniqueid of the phone's channel (AMI events)"},
        "auto_answer_headers": {
            "type": "array",
            "items": {"type": "array", "items": {"type": "string"}},
            "description": "[name, value] SIP headers added to the phone's INVITE"},
    },
}
_STATUS = {"unknown_device": 404, "device_offline": 422, "bad_request": 422,
           "ami_unavailable": 503, "originate_failed": 503}


async def click_to_call(ctx: RequestContext) -> Reply:
    service = ctx.deps.click_to_call
    assert service is not None
    body = ctx.body
    try:
        placed = await service.place(
            tenant=body["tenant"], device=body["device"], dest=body["dest"],
            caller_id=body.get("caller_id", ""), context=body.get("context"),
        )
    except ClickToCallError as exc:
        status = _STATUS.get(exc.code, 503)
        if status == 404:
            raise not_found(exc.code, exc.message) from None
        if status == 422:
            raise invalid(exc.code, exc.message, exc.field) from None
        raise unavailable(exc.code, exc.message) from None
    ctx.log.info("api_click_to_call", device=placed.device, tenant=placed.tenant,
                 channel_id=placed.channel_id)
    return Reply({
        "tenant": placed.tenant, "device": placed.device, "profile": placed.profile,
        "dest": placed.dest, "context": placed.context, "asterisk": placed.asterisk,
        "channel_id": placed.channel_id,
        "auto_answer_headers": [[h, v] for h, v in placed.headers],
    }, status=202)


ROUTES = (
    Route("POST", "/v1/calls/click-to-call", "click_to_call",
          "Ring a desk phone (auto-answer), then dial a number", "calls", click_to_call,
          SITE_CHANGERS, Scope.SITE, PLACED, status=202,
          description="The phone is rung with the auto-answer header(s) of its hardware "
                      "profile; once it answers, its channel runs `dest` in `context`, "
                      "whose dialplan authorizes the call (counted on the phone's call "
                      "appearances) and dials out. 404 unknown_device, 422 device_offline "
                      "(the phone is not registered), 503 ami_unavailable / "
                      "originate_failed. Nothing is dialled on an error.",
          body=BODY,
          body_example={"tenant": "acme", "device": "6001", "dest": "4930123456"},
          needs=("click_to_call",), not_found=True),
)

__all__ = ["ROUTES"]

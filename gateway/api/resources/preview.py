"""Preview dialling over the API (and, through `PreviewDesk`, the MQTT commands): an agent
asks for the next lead of a preview campaign, looks at it, then accepts or skips it.

    POST /v1/tenants/{tenant}/campaigns/{campaign}/preview/offer   {"agent"}
    POST /v1/tenants/{tenant}/campaigns/{campaign}/preview/accept  {"agent", "lead"}
    POST /v1/tenants/{tenant}/campaigns/{campaign}/preview/skip    {"agent", "lead"}

An offer reserves the lead for that agent (120 s); it is also published on MQTT as
`campaign/<tenant>/<campaign>/preview/offered`, so an agent's screen can follow offers
without polling. Accepting rings the agent's desk phone first (with the auto-answer
header of its hardware profile), then the lead, through the same limits as every dialer
call. Skipping puts the lead back after the campaign's skip delay (no dial counted) and
offers the agent the next one in the same answer. All three are POST: each changes who
holds a lead.

Agents are named by their Asterisk interface (`PJSIP/6001`), as in the agent queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from dialer.campaign import DialMode
from dialer.leads import Lead, LeadState
from dialer.runner import CampaignRunner, PreviewOffer
from gateway.api.access import Scope
from gateway.api.domain import domain_errors
from gateway.api.errors import ApiError, unavailable
from gateway.api.resources.campaigns import CAMPAIGN_PARAM, SUPERVISORS
from gateway.api.resources.leads import LEAD, lead_json
from gateway.api.routes import Reply, RequestContext, Route
from gateway.api.schemas import TENANT_PARAM
from gateway.campaigns import CampaignService

AGENT: dict[str, Any] = {"type": "string", "pattern": r"^[A-Za-z0-9_./@:+-]{1,80}$",
                         "description": "the agent's interface, e.g. PJSIP/6001"}
LEAD_ID: dict[str, Any] = {"type": "string", "pattern": r"^\+?[0-9]{3,20}$",
                           "description": "the offered lead's phone number (E.164)"}
OFFER_ASK: dict[str, Any] = {
    "type": "object", "required": ["agent"], "additionalProperties": False,
    "properties": {"agent": AGENT},
}
DECISION: dict[str, Any] = {
    "type": "object", "required": ["agent", "lead"], "additionalProperties": False,
    "properties": {"agent": AGENT, "lead": LEAD_ID},
}
OFFER: dict[str, Any] = {
    "type": "object", "required": ["tenant", "campaign", "agent", "lead", "expires_at"],
    "additionalProperties": False,
    "properties": {"tenant": {"type": "string"}, "campaign": {"type": "string"},
                   "agent": {"type": "string"}, "lead": LEAD,
                   "expires_at": {"type": "number",
                                  "description": "epoch seconds; accept or skip before"}},
}
MAYBE_OFFER: dict[str, Any] = {**OFFER, "type": ["object", "null"]}
OFFERED: dict[str, Any] = {
    "type": "object", "required": ["offer"], "additionalProperties": False,
    "properties": {"offer": {**MAYBE_OFFER,
                             "description": "null: no lead may be called now"}},
}
ACCEPTED: dict[str, Any] = {
    "type": "object", "required": ["placed", "reason", "lead", "agent"],
    "additionalProperties": False,
    "properties": {
        "placed": {"type": "boolean",
                   "description": "true: the agent's phone is being called, then the lead; "
                                  "false: refused (reason), the lead goes back to the list"},
        "reason": {"type": "string", "description": "ok, or e.g. trunk_full, outside_window"},
        "lead": {"type": "string"}, "agent": {"type": "string"},
    },
}
SKIPPED: dict[str, Any] = {
    "type": "object", "required": ["skipped", "next"], "additionalProperties": False,
    "properties": {"skipped": LEAD,
                   "next": {**MAYBE_OFFER, "description": "the agent's next offer; null: "
                            "none now"}},
}


class EventSink(Protocol):
    def publish(self, kind: str, payload: dict[str, Any], tenant: str | None = None) -> None: ...


def offered_kind(tenant: str, campaign_id: str) -> str:
    """The event kind of an offer: topic `campaign/<tenant>/<campaign>/preview/offered`,
    under the tenant like the command topics (one broker ACL per tenant covers both); a
    dot in a name becomes `_` so that it stays one topic level."""
    return f"campaign.{_level(tenant)}.{_level(campaign_id)}.preview.offered"


def _level(name: str) -> str:
    return name.replace(".", "_")


def offer_json(tenant: str, offer: PreviewOffer) -> dict[str, Any]:
    return {"tenant": tenant, "campaign": offer.lead.campaign_id, "agent": offer.agent,
            "lead": lead_json(offer.lead), "expires_at": offer.expires_at}


class PreviewDesk:
    """The preview runner of a campaign as this gateway runs it (`CampaignService`), for
    the API and the MQTT commands, and the `preview/offered` event. Refusals are
    `ApiError`s with the API's codes.

    Asking again while an offer is still held gives the same lead back (a screen that
    reloads must not reserve one lead after another); the desk remembers the last offer
    of each agent for that, so with several gateways an agent should stay on one.
    `clock` is the dialer's (the runners' offer times are on it)."""

    def __init__(self, campaigns: CampaignService, events: EventSink | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._campaigns = campaigns
        self._events = events
        self._clock = clock
        self._last: dict[tuple[str, str, str], str] = {}  # (tenant, campaign, agent): lead

    async def _runner(self, tenant: str, campaign_id: str) -> CampaignRunner:
        campaign = await self._campaigns.store.require(tenant, campaign_id)
        if campaign.mode is not DialMode.PREVIEW:
            raise ApiError(409, "not_preview", f"campaign {campaign_id!r} runs in "
                           f"{campaign.mode.value} mode; switch it to preview first")
        if campaign.paused:
            raise ApiError(409, "campaign_paused", f"campaign {campaign_id!r} is paused")
        handle = self._campaigns.handle(tenant, campaign_id)
        if handle is None:  # created since the last look for campaigns
            await self._campaigns.refresh()
            handle = self._campaigns.handle(tenant, campaign_id)
        if handle is None:
            raise unavailable("dialer_not_running", f"this gateway runs no dialer for "
                              f"campaign {campaign_id!r} (see the log: campaign_not_runnable)")
        return handle.runner

    async def offer(self, tenant: str, campaign_id: str, agent: str) -> PreviewOffer | None:
        runner = await self._runner(tenant, campaign_id)
        key = (tenant, campaign_id, agent)
        held = await self._still_held(runner, key)
        if held is not None:
            return held
        offer = await runner.offer_preview(agent)
        if offer is None:
            return None
        self._last[key] = offer.lead.phone
        if self._events is not None:
            self._events.publish(offered_kind(tenant, campaign_id),
                                 offer_json(tenant, offer), tenant)
        return offer

    async def _still_held(self, runner: CampaignRunner,
                          key: tuple[str, str, str]) -> PreviewOffer | None:
        phone = self._last.get(key)
        if phone is None:
            return None
        lead = await runner.leads.get(runner.keys, phone)
        agent = key[2]
        if (lead is None or lead.state is not LeadState.OFFERED or lead.offered_to != agent
                or lead.next_at is None or lead.next_at <= self._clock()):
            del self._last[key]
            return None
        return PreviewOffer(lead, agent, lead.next_at)

    async def accept(self, tenant: str, campaign_id: str, agent: str,
                     lead: str) -> dict[str, Any]:
        runner = await self._runner(tenant, campaign_id)
        result = await runner.accept_preview(lead, agent)
        self._forget(tenant, campaign_id, agent, lead)
        if not result.placed and result.reason == "offer_expired":
            raise _not_held(lead, agent)
        return {"placed": result.placed, "reason": result.reason, "lead": lead,
                "agent": agent}

    async def skip(self, tenant: str, campaign_id: str, agent: str,
                   lead: str) -> tuple[Lead, PreviewOffer | None]:
        runner = await self._runner(tenant, campaign_id)
        skipped = await runner.skip_preview(lead, agent)
        self._forget(tenant, campaign_id, agent, lead)
        if skipped is None:
            raise _not_held(lead, agent)
        return skipped, await self.offer(tenant, campaign_id, agent)


    def _forget(self, tenant: str, campaign_id: str, agent: str, lead: str) -> None:
        """The offer of `lead` is decided; a wrong lead named leaves the agent's own."""
        key = (tenant, campaign_id, agent)
        if self._last.get(key) == lead:
            del self._last[key]


def _not_held(lead: str, agent: str) -> ApiError:
    return ApiError(409, "offer_not_held", f"lead {lead} is not offered to {agent} now "
                    "(the offer expired or was never made); ask for a new offer")


def desk(ctx: RequestContext) -> PreviewDesk:
    found = ctx.deps.preview
    assert found is not None  # the routes declare needs=("preview",)
    return found


async def offer_lead(ctx: RequestContext) -> Reply:
    tenant, cid, agent = ctx.path["tenant"], ctx.path["campaign"], ctx.body["agent"]
    offer = await desk(ctx).offer(tenant, cid, agent)
    ctx.log.info("api_preview_offer", tenant=tenant, campaign=cid, agent=agent,
                 lead=offer.lead.phone if offer else None, by=ctx.caller.token_id)
    return Reply({"offer": offer_json(tenant, offer) if offer else None})


async def accept_lead(ctx: RequestContext) -> Reply:
    tenant, cid, b = ctx.path["tenant"], ctx.path["campaign"], ctx.body
    out = await desk(ctx).accept(tenant, cid, b["agent"], b["lead"])
    ctx.log.info("api_preview_accept", tenant=tenant, campaign=cid, agent=b["agent"],
                 lead=b["lead"], placed=out["placed"], reason=out["reason"],
                 by=ctx.caller.token_id)
    return Reply(out)


async def skip_lead(ctx: RequestContext) -> Reply:
    tenant, cid, b = ctx.path["tenant"], ctx.path["campaign"], ctx.body
    skipped, nxt = await desk(ctx).skip(tenant, cid, b["agent"], b["lead"])
    ctx.log.info("api_preview_skip", tenant=tenant, campaign=cid, agent=b["agent"],
                 lead=b["lead"], by=ctx.caller.token_id)
    return Reply({"skipped": lead_json(skipped),
                  "next": offer_json(tenant, nxt) if nxt else None})


_BASE = "/v1/tenants/{tenant}/campaigns/{campaign}/preview"
_PATH = {"tenant": TENANT_PARAM, "campaign": CAMPAIGN_PARAM}
_AGENT_EXAMPLE = {"agent": "PJSIP/6001"}
_DECISION_EXAMPLE = {"agent": "PJSIP/6001", "lead": "+12025550100"}


def _route(verb: str, name: str, summary: str, handler: Any, body: dict[str, Any],
           example: dict[str, str], response: dict[str, Any], description: str) -> Route:
    return Route("POST", f"{_BASE}/{verb}", name, summary, "campaigns",
                 domain_errors(handler), SUPERVISORS, Scope.TENANT, response,
                 description=description, path_params=_PATH, body=body,
                 body_example=example, needs=("preview",), not_found=True, conflict=True,
                 tenant_writes=True)


ROUTES = (
    _route("offer", "preview_offer", "Reserve the next lead of a preview campaign for an "
           "agent", offer_lead, OFFER_ASK, _AGENT_EXAMPLE, OFFERED,
           "The lead is the agent's for 120 s; also published on MQTT "
           "(campaign/<tenant>/<campaign>/preview/offered). `offer` null: no lead may be "
           "called now. 409 not_preview / campaign_paused."),
    _route("accept", "preview_accept", "Accept an offered lead: ring the agent's phone, "
           "then the lead", accept_lead, DECISION, _DECISION_EXAMPLE, ACCEPTED,
           "One Originate to the agent's desk phone with its profile's auto-answer header; "
           "its channel then dials the lead. 409 offer_not_held when the lead is not "
           "offered to this agent now."),
    _route("skip", "preview_skip", "Skip an offered lead and get the next offer",
           skip_lead, DECISION, _DECISION_EXAMPLE, SKIPPED,
           "The lead is due again after the campaign's skip delay (no dial counted); the "
           "answer holds the agent's next offer. 409 offer_not_held."),
)

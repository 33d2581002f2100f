"""MQTT command topics for supervisors: `callgate/<site>/cmd/...`.

| topic (publish a JSON object)                        | payload besides `token`, `id`      |
|------------------------------------------------------|------------------------------------|
| `callgate/<site>/cmd/campaign/<tenant>/<id>/set`     | any of `mode`, `max_abandon`,      |
|                                                      | `max_ratio`, `paused`              |
| `callgate/<site>/cmd/campaign/<tenant>/<id>/pause`   | -                                  |
| `callgate/<site>/cmd/campaign/<tenant>/<id>/resume`  | -                                  |
| `.../cmd/campaign/<tenant>/<id>/preview/offer`       | `agent` (e.g. `PJSIP/6001`)        |
| `.../cmd/campaign/<tenant>/<id>/preview/accept`      | `agent`, `lead`                    |
| `.../cmd/campaign/<tenant>/<id>/preview/skip`        | `agent`, `lead`                    |

Every command carries an API bearer token (`"token": "cg_..."`) and is authorised as the
HTTP API's `PATCH /v1/tenants/{tenant}/campaigns/{id}`: roles admin, operator,
supervisor, reseller; the tenant must be the token's own, beneath it (reseller) or any
(site-wide token). Input is checked against the same schema, whole, before anything is
written. The answer goes to the same path under `reply/` instead of `cmd/`
(`callgate/<site>/reply/campaign/<tenant>/<id>/set`), QoS 1, echoing the command's `id`:
`{"v": 1, "id": ..., "ok": true, "campaign": {...}}` or `{"ok": false, "error": {"code",
"message", "field"?}}` with the API's error codes. The preview commands are those of
`POST /v1/tenants/{tenant}/campaigns/{id}/preview/{offer,accept,skip}` and answer what
those answer (`offer`; `placed`, `reason`; `skipped`, `next`) besides `ok`; an offer is
also published as the event `campaign/<tenant>/<id>/preview/offered`. A change is
logged (`campaign_changed`) and kept in the campaign's audit trail with `by =
mqtt:<token id>[:<label>]`, and is in force from the next pacing tick.

Broker ACLs can hand a tenant's supervisors `callgate/<site>/+/campaign/<tenant>/#` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
import structlog

from dialer.campaign_store import CampaignNotFound
from gateway.api.access import TenantAccess, parents_from_limits
from gateway.api.domain import Dialer, dialer_over
from gateway.api.errors import ApiError, forbidden, invalid, not_found
from gateway.api.resources.campaigns import CHANGE, SUPERVISORS, apply_change, campaign_json, who
from gateway.api.resources.leads import lead_json
from gateway.api.resources.preview import DECISION, OFFER_ASK, PreviewDesk, offer_json
from gateway.api.tokens import RedisClient, TokenInfo, TokenStore
from gateway.api.validation import validate
from gateway.mqtt_events import SCHEMA_VERSION, Broker
from limits import LimitsService

log = structlog.get_logger(__name__)

ACTIONS = ("set", "pause", "resume")
PREVIEW_ACTIONS = ("offer", "accept", "skip")
MAX_PAYLOAD = 16 * 1024


class MqttCommands:
    """Subscribes to the site's command topics and answers each command on its reply
    topic; reconnects with backoff like the events publisher."""

    def __init__(self, url: str, site: str, redis: RedisClient,
                 limits: LimitsService | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._broker = Broker.from_url(url)
        self.site = site
        self._redis = redis
        self._limits = limits
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.handled = 0
        # Set by the wiring once the dialer runs; None: preview commands answer 503.
        self.preview: PreviewDesk | None = None

    @property
    def subscription(self) -> str:
        return f"callgate/{self.site}/cmd/#"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt-commands")

    async def close(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with self._broker.client(
                        f"callgate-cmd-{self.site}-{random.getrandbits(32):08x}") as client:
                    await client.subscribe(self.subscription, qos=1)
                    self.connected.set()
                    delay = 0.5
                    log.info("mqtt_commands_subscribed", topic=self.subscription)
                    async for message in client.messages:
                        reply_topic, reply = await self.handle(str(message.topic),
                                                               message.payload)
                        self.handled += 1
                        if reply_topic is not None:
                            await client.publish(reply_topic, json.dumps(reply), qos=1)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                log.warning("mqtt_commands_reconnecting", error=str(exc),
                            in_seconds=round(delay, 2))
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 30.0)

    async def handle(self, topic: str, payload: Any) -> tuple[str | None, dict[str, Any]]:
        """(reply topic, reply) for one command; the reply topic is None for a topic that
        names no command (nothing to answer to)."""
        prefix = f"callgate/{self.site}/cmd/"
        parts = topic.removeprefix(prefix).split("/")
        known = parts[0] == "campaign" and (
            (len(parts) == 4 and parts[3] in ACTIONS)
            or (len(parts) == 5 and parts[3] == "preview" and parts[4] in PREVIEW_ACTIONS))
        if not topic.startswith(prefix) or not known:
            log.info("mqtt_command_unknown", topic=topic)
            return None, {}
        tenant, cid, action = parts[1], parts[2], "/".join(parts[3:])
        reply_topic = f"callgate/{self.site}/reply/{'/'.join(parts)}"
        bound = log.bind(tenant=tenant, campaign=cid, action=action)
        body: dict[str, Any] = {"v": SCHEMA_VERSION, "ts": self._clock()}
        try:
            command = _decode(payload)
            body["id"] = command.pop("id", None)
            token = command.pop("token", None)
            principal = await self._authorise(tenant, token)
            bound = bound.bind(token_id=principal.token_id)
            if action.startswith("preview/"):
                answer = await self._preview(tenant, cid, action, command, bound)
            else:
                answer = await self._apply(tenant, cid, action, principal, command, bound)
        except ApiError as exc:
            bound.info("mqtt_command_refused", code=exc.code, field=exc.field)
            return reply_topic, {**body, "ok": False, **exc.body()}
        except Exception:  # Redis away, a bug: the supervisor still gets an answer
            bound.exception("mqtt_command_failed")
            return reply_topic, {**body, "ok": False, "error": {
                "code": "internal_error", "message": "the gateway failed to apply this "
                "command; it is logged as mqtt_command_failed"}}
        return reply_topic, {**body, "ok": True, **answer}

    async def _authorise(self, tenant: str, token: Any) -> TokenInfo:
        """As the API's PATCH of a campaign: a supervisor-or-above token that sees the
        tenant."""
        if not isinstance(token, str) or not token:
            raise ApiError(401, "token_missing", "put the API token in the payload: "
                           '{"token": "cg_..."}')
        principal = await TokenStore(self._redis, self.site, clock=self._clock).authenticate(
            token)
        if principal is None:
            raise ApiError(401, "token_invalid", "the token is unknown, revoked or malformed")
        if principal.role not in SUPERVISORS:
            raise forbidden("role_forbidden", f"a {principal.role.value} token may not "
                            "change campaigns")
        lookup = None if self._limits is None else parents_from_limits(self._limits.settings)
        if not await TenantAccess(principal, lookup).may_read(tenant):
            raise forbidden("tenant_forbidden", f"this token may not see tenant {tenant!r}",
                            "tenant")
        return principal

    async def _apply(self, tenant: str, cid: str, action: str, principal: TokenInfo,
                     command: dict[str, Any], bound: Any) -> dict[str, Any]:
        if action == "pause":
            command = {**command, "paused": True}
        elif action == "resume":
            command = {**command, "paused": False}
        validate(CHANGE, command)
        d: Dialer = dialer_over(self._redis)
        try:
            changed = await apply_change(d, tenant, cid, command,
                                         who(principal, via="mqtt"))
        except CampaignNotFound as exc:
            raise not_found("campaign_not_found", str(exc)) from None
        except ValueError as exc:  # a tenant or campaign id that cannot be a key
            raise invalid("invalid_value", str(exc)) from None
        bound.info("mqtt_command_applied", fields=sorted(command))
        return {"campaign": campaign_json(changed)}

    async def _preview(self, tenant: str, cid: str, action: str, command: dict[str, Any],
                       bound: Any) -> dict[str, Any]:
        if self.preview is None:
            raise ApiError(503, "preview_unavailable", "this gateway runs no dialer")
        verb = action.removeprefix("preview/")
        validate(OFFER_ASK if verb == "offer" else DECISION, command)
        agent = command["agent"]
        try:
            if verb == "offer":
                offer = await self.preview.offer(tenant, cid, agent)
                bound.info("mqtt_preview_offer", agent=agent,
                           lead=offer.lead.phone if offer else None)
                return {"offer": offer_json(tenant, offer) if offer else None}
            if verb == "accept":
                out = await self.preview.accept(tenant, cid, agent, command["lead"])
                bound.info("mqtt_preview_accept", agent=agent, lead=command["lead"],
                           placed=out["placed"], reason=out["reason"])
                return out
            skipped, nxt = await self.preview.skip(tenant, cid, agent, command["lead"])
        except CampaignNotFound as exc:
            raise not_found("campaign_not_found", str(exc)) from None
        bound.info("mqtt_preview_skip", agent=agent, lead=command["lead"])
        return {"skipped": lead_json(skipped),
                "next": offer_json(tenant, nxt) if nxt else None}


def _decode(payload: Any) -> dict[str, Any]:
    raw = bytes(payload) if isinstance(payload, bytes | bytearray) else str(payload).encode()
    if len(raw) > MAX_PAYLOAD:
        raise invalid("body_too_large", f"a command is at most {MAX_PAYLOAD} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid("invalid_json", f"the payload is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid("field_type", "the payload must be a JSON object")
    return body

"""The dialer's `CallPlacer` and `ApologyPlayer` over limits/ and AMI.

A dialer call passes limits like any other call, before anything is dialled: tenant
outbound, the campaign's trunk (channels and calls per second) and, when the tenant has a
size set for it, the `dialer_seat` licence pool. Only on ALLOW is the Originate sent,
carrying the decision's CALLGATE_* variables (CALLGATE_LEASE above all) and
CALLGATE_REQUEST, exactly as the `authorize` route leaves them on a channel: CallControl
then releases the lease when the call's channels hang up, renews it while they are up,
and reconciliation can count the call again from Asterisk's own state.

Preview ("agent first") takes the click-to-call path (gateway/devices/dialing.py): the
agent's desk phone must be known and registered (else the accept fails with
unknown_device / device_offline before any slot is taken), and one Originate rings it with
the auto-answer SIP header(s) of its hardware profile; only once it answers does the
phone's channel run the dial context, which dials the lead. An agent interface that is not
a PJSIP endpoint (a Local channel, say) is rung by a plain Originate without a header.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping
from typing import Protocol

import structlog

from ami import AmiError
from dialer.campaign import Campaign
from dialer.clock import Clock
from dialer.leads import Lead
from dialer.placement import PlaceResult
from gateway.agi.decision import REQUEST_VAR
from gateway.call_args import encode_request
from gateway.call_control import AsteriskView
from gateway.campaigns.calls import CallBook, DialerCall
from gateway.campaigns.settings import DialerSettings
from gateway.devices.dialing import ClickToCall, ClickToCallError
from gateway.devices.registry import DeviceSnapshot
from limits import BackendUnavailable, CallRequest, InvalidRequest, LimitsService

log = structlog.get_logger(__name__)

CAMPAIGN_VAR = "CALLGATE_CAMPAIGN"
# A refused placement is retried after this long (dialer clock), by reason.
RETRY_AFTER_S = {"ami_unavailable": 10.0, "originate_failed": 60.0, "bad_request": 3600.0,
                 "device_offline": 30.0, "unknown_device": 60.0}
_POOL_CHECK_S = 10.0


class DeviceLookup(Protocol):
    """What the placer needs of the device registry: a desk phone by PJSIP endpoint."""

    def device(self, endpoint: str) -> DeviceSnapshot | None: ...


def pjsip_endpoint(agent: str) -> str | None:
    """`PJSIP/6001` -> `6001`; None for any other kind of agent interface."""
    tech, _, endpoint = agent.partition("/")
    return endpoint if tech.upper() == "PJSIP" and endpoint and "/" not in endpoint else None


class AmiCallPlacer:
    def __init__(self, limits: LimitsService, asterisks: Mapping[str, AsteriskView],
                 book: CallBook, settings: DialerSettings, clock: Clock, *,
                 devices: DeviceLookup | None = None) -> None:
        self._limits = limits
        self._devices = devices
        self._phones = (ClickToCall(devices, asterisks, context=settings.dial_context)
                        if devices is not None else None)
        self._asterisks = dict(asterisks)
        self._book = book
        self._settings = settings
        self._clock = clock
        self._turn = itertools.count()
        self._pools: dict[str, tuple[float, tuple[str, ...]]] = {}
        # Placements by outcome ("placed" or the refusal reason), for stats and tests.
        self.results: Counter[str] = Counter()

    def _pick(self) -> tuple[str, AsteriskView] | None:
        """A logged-in Asterisk, round robin."""
        live = [(n, link) for n, link in sorted(self._asterisks.items())
                if link.client.logged_in]
        if not live:
            return None
        return live[next(self._turn) % len(live)]

    async def _seat_pools(self, tenant: str, now: float) -> tuple[str, ...]:
        pool = self._settings.seat_pool
        if not pool:
            return ()
        cached = self._pools.get(tenant)
        if cached is not None and now - cached[0] < _POOL_CHECK_S:
            return cached[1]
        pools: tuple[str, ...]
        try:
            status = await self._limits.settings.show("pool", pool, tenant=tenant)
            pools = (pool,) if status.limit is not None else ()
        except BackendUnavailable:
            pools = cached[1] if cached is not None else ()
        self._pools[tenant] = (now, pools)
        return pools

    async def place(self, lead: Lead, campaign: Campaign, *, call_id: str,
                    agent: str | None = None) -> PlaceResult:
        bound = log.bind(call_id=call_id, tenant=campaign.tenant,
                         campaign=campaign.campaign_id, lead=lead.phone)
        picked = self._pick()
        if picked is None:
            bound.warning("dialer_not_placed", reason="ami_unavailable")
            return self._refused("ami_unavailable")
        name, link = picked
        phone = pjsip_endpoint(agent) if agent else None
        if phone is not None:
            if self._phones is None:
                bound.warning("dialer_not_placed", reason="unknown_device", agent=agent)
                return self._refused("unknown_device")
            try:
                self._phones.ready_phone(phone, tenant=campaign.tenant)
            except ClickToCallError as exc:
                bound.info("dialer_not_placed", reason=exc.code, agent=agent)
                return self._refused(exc.code)
        pools = await self._seat_pools(campaign.tenant, self._clock.now())
        try:
            req = CallRequest(campaign.tenant, "out", dest=lead.phone,  # type: ignore[arg-type]
                              trunk=campaign.trunk or None, pools=pools, call_id=call_id,
                              origin=name)
        except InvalidRequest as exc:
            bound.error("dialer_not_placed", reason="bad_request", error=str(exc))
            return self._refused("bad_request")
        decision = await self._limits.authorize(req)
        if not decision.allowed:
            bound.info("dialer_not_placed", reason=decision.reason.value,
                       scope=decision.refused_scope)
            return self._refused(decision.reason.value)
        now = self._clock.now()
        self._book.add(DialerCall(
            call_id, campaign.tenant, campaign.campaign_id, decision.lease_id, name, now,
            now + campaign.dial_timeout_s + self._settings.unseen_grace_s,
            preview_agent=agent or ""))
        variables = {**decision.channel_vars(), REQUEST_VAR: encode_request(req),
                     CAMPAIGN_VAR: f"{campaign.tenant}:{campaign.campaign_id}"}
        if phone is not None and self._phones is not None:
            try:
                placed = await self._phones.place(
                    tenant=campaign.tenant, device=phone, dest=lead.phone,
                    caller_id=campaign.caller_id, context=self._settings.dial_context,
                    timeout_s=campaign.dial_timeout_s, channel_id=call_id,
                    variables=list(variables.items()), asterisk=name)
            except ClickToCallError as exc:
                bound.warning("dialer_not_placed", reason=exc.code, error=exc.message)
                await self._undo(call_id, decision.lease_id)
                return self._refused(exc.code)
            action_id, headers = placed.action_id, [h for h, _ in placed.headers]
        else:
            fields = self.originate_fields(lead, campaign, call_id, agent, variables)
            try:
                result = await link.client.action("Originate", fields)
            except AmiError as exc:
                bound.warning("dialer_not_placed", reason="ami_unavailable", error=str(exc))
                await self._undo(call_id, decision.lease_id)
                return self._refused("ami_unavailable")
            if not result.ok:
                bound.warning("dialer_not_placed", reason="originate_failed",
                              error=result.message)
                await self._undo(call_id, decision.lease_id)
                return self._refused("originate_failed")
            action_id, headers = result.response.action_id or "", []
        self._book.bind_action(call_id, action_id)
        self.results["placed"] += 1
        bound.info("dialer_originated", lease=decision.lease_id, asterisk=name,
                   agent=agent or "", auto_answer=headers)
        return PlaceResult(True)

    def originate_fields(self, lead: Lead, campaign: Campaign, call_id: str,
                         agent: str | None, variables: Mapping[str, str]
                         ) -> list[tuple[str, str]]:
        s = self._settings
        if agent:  # preview to a non-PJSIP agent: the agent first, then the lead
            target = [("Channel", agent), ("Context", s.dial_context),
                      ("Exten", lead.phone), ("Priority", "1")]
        else:
            channel = (campaign.dial_target(lead.phone) if campaign.dial_string
                       else f"Local/{lead.phone}@{s.dial_context}")
            target = [("Channel", channel), ("Context", s.queue_context),
                      ("Exten", campaign.agent_queue), ("Priority", "1")]
        fields = [*target, ("Timeout", str(campaign.dial_timeout_s * 1000)),
                  ("Async", "true"), ("ChannelId", call_id)]
        if campaign.caller_id:
            fields.append(("CallerID", campaign.caller_id))
        fields += [("Variable", f"{k}={v}") for k, v in variables.items()]
        return fields

    async def _undo(self, call_id: str, lease: str) -> None:
        """The Originate was not queued: forget the call and give its slots back now."""
        self._book.forget(call_id)
        await self._limits.release(lease, by="dialer_originate_failed")

    def _refused(self, reason: str) -> PlaceResult:
        self.results[reason] += 1
        return PlaceResult(False, reason, retry_after_s=RETRY_AFTER_S.get(reason))


class AmiApology:
    """Redirects an abandoned call to the apology context (or hangs it up)."""

    def __init__(self, asterisks: Mapping[str, AsteriskView], book: CallBook,
                 settings: DialerSettings) -> None:
        self._asterisks = dict(asterisks)
        self._book = book
        self._settings = settings

    async def apologise(self, call_id: str, campaign: Campaign) -> None:
        call = self._book.get(call_id)
        link = self._asterisks.get(call.asterisk) if call is not None else None
        chan = link.channels.channel(call_id) if link is not None else None
        if link is None or chan is None or chan.ended:
            log.info("dialer_apology_skipped", call_id=call_id, reason="call gone")
            return
        ctx = self._settings.apology_context
        if ctx:
            result = await link.client.action("Redirect", [
                ("Channel", chan.name), ("Context", ctx), ("Exten", "s"), ("Priority", "1")])
            if result.ok:
                log.info("dialer_apology", call_id=call_id, channel=chan.name,
                         tenant=campaign.tenant, campaign=campaign.campaign_id)
                return
            log.warning("dialer_apology_redirect_failed", call_id=call_id,
                        error=result.message)
        await link.client.action("Hangup", [("Channel", chan.name), ("Cause", "16")])
        log.info("dialer_abandoned_hangup", call_id=call_id, channel=chan.name)


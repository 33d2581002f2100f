"""The dialer's `CallPlacer` and `ApologyPlayer` over limits/ and AMI.

A dialer call passes limits like any other call, before anything is dialled: tenant
outbound, the campaign's trunk (channels and calls per second) and, when the tenant has a
size set for it, the `dialer_seat` licence pool. Only on ALLOW is the Originate sent,
carrying the decision's CALLGATE_* variables (CALLGATE_LEASE above all) and
CALLGATE_REQUEST, exactly as the `authorize` route leaves them on a channel: CallControl
then releases the lease when the call's channels hang up, renews it while they are up,
and reconciliation can count the call again from Asterisk's own state.

Preview ("agent first"): one Originate whose Channel is the agent's desk phone. Asterisk
calls the phone first; only once it answers does the phone's channel run the dial context,
which dials the lead. The phone is asked to answer by itself with the auto-answer SIP
header(s) of its hardware profile (the device registry knows which phone model registered
on that endpoint; see gateway/devices/click_to_call.py for how `PJSIP_HEADER(add,...)`
reaches the INVITE). A phone the registry has never seen is rung without a header.
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
from gateway.devices.click_to_call import auto_answer_headers, pjsip_header_variable
from gateway.devices.registry import DeviceSnapshot
from limits import BackendUnavailable, CallRequest, InvalidRequest, LimitsService

log = structlog.get_logger(__name__)

CAMPAIGN_VAR = "CALLGATE_CAMPAIGN"
# A refused placement is retried after this long (dialer clock), by reason.
RETRY_AFTER_S = {"ami_unavailable": 10.0, "originate_failed": 60.0, "bad_request": 3600.0}
_POOL_CHECK_S = 10.0


class DeviceLookup(Protocol):
    """What the placer needs of the device registry: a desk phone by PJSIP endpoint."""

    def device(self, endpoint: str) -> DeviceSnapshot | None: ...


def agent_auto_answer(devices: DeviceLookup | None, agent: str) -> list[tuple[str, str]]:
    """Auto-answer headers for an agent interface (`PJSIP/<endpoint>`), [] if unknown."""
    tech, _, endpoint = agent.partition("/")
    if devices is None or tech.upper() != "PJSIP" or not endpoint:
        return []
    snap = devices.device(endpoint)
    return auto_answer_headers(snap.profile) if snap is not None else []


class AmiCallPlacer:
    def __init__(self, limits: LimitsService, asterisks: Mapping[str, AsteriskView],
                 book: CallBook, settings: DialerSettings, clock: Clock, *,
                 devices: DeviceLookup | None = None) -> None:
        self._limits = limits
        self._devices = devices
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
        self._book.bind_action(call_id, result.response.action_id or "")
        self.results["placed"] += 1
        bound.info("dialer_originated", lease=decision.lease_id, asterisk=name,
                   agent=agent or "",
                   auto_answer=[h for h, _ in agent_auto_answer(self._devices, agent)]
                   if agent else [])
        return PlaceResult(True)

    def originate_fields(self, lead: Lead, campaign: Campaign, call_id: str,
                         agent: str | None, variables: Mapping[str, str]
                         ) -> list[tuple[str, str]]:
        s = self._settings
        if agent:  # preview: the agent's phone first, then the dial context dials the lead
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
        if agent:
            fields += [("Variable", pjsip_header_variable(h, v))
                       for h, v in agent_auto_answer(self._devices, agent)]
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


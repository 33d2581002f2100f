"""Prepaid cards on live calls: the gateway side of prepaid (authorize, AMI events, AMI actions).

Not wired into the daemon yet: a `card=` call must also hold its limits lease, and the
channel has one CALLGATE_LEASE, so the session id needs a variable of its own first.

prepaid never talks AMI (DESIGN); this module gives it a `CallControl` over the AMI clients,
feeds the channel tables' answer/hangup into the `DebitScheduler`, and turns a prepaid
`Authorization` into the CALLGATE_* decision the `authorize` route sets when `card=` is given.
The session stores the AGI request's uniqueid as its call id, so AMI can find its channels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import structlog
from redis.exceptions import RedisError

from ami import AmiError, CallInfo, ChannelInfo, ChannelTable
from ami.client import AmiClient
from gateway.agi import AgiRequest, Decision
from gateway.agi.decision import CAUSE_TEMPORARY_FAILURE, LEASE_VAR
from limits import CallRequest
from prepaid.clock import Clock, SystemClock
from prepaid.control import EndedBy, EventSink, WarnTarget
from prepaid.debit_transport import ThreadedDebits
from prepaid.errors import PrepaidError
from prepaid.rateplan_store import RatePlanCache, RatePlanStore
from prepaid.scheduler import DebitScheduler
from prepaid.scripts import RedisClient
from prepaid.sessions import AuthorizeRequest, SessionService

log = structlog.get_logger(__name__)

PROMPT_CHANNEL = "Local/warning@gw-prompt-player"


class AsteriskLinkLike(Protocol):
    """gateway.wiring.AsteriskLink, without importing wiring (it imports us)."""

    @property
    def client(self) -> AmiClient: ...

    @property
    def channels(self) -> ChannelTable: ...


class AmiCallControl:
    """prepaid.control.CallControl over AMI: Hangup to cut off, ChanSpy Originate to warn."""

    def __init__(self, asterisks: Mapping[str, AsteriskLinkLike]) -> None:
        self._asterisks = asterisks

    def _find(self, call_id: str) -> tuple[AsteriskLinkLike, CallInfo, ChannelInfo] | None:
        for link in self._asterisks.values():
            chan = link.channels.channel(call_id)
            if chan is None:
                continue
            call = link.channels.call(chan.linkedid)
            if call is not None:
                return link, call, chan
        return None

    async def cut_off(self, call_id: str) -> None:
        found = self._find(call_id)
        if found is None:
            log.warning("prepaid_cut_off_no_channel", call_id=call_id)
            return
        link, call, _ = found
        for ch in call.live_channels:
            try:
                await link.client.action("Hangup", [("Channel", ch.name), ("Cause", "16")])
            except AmiError as exc:
                log.warning("prepaid_cut_off_failed", call_id=call_id, channel=ch.name,
                            error=str(exc))
        log.info("prepaid_cut_off", call_id=call_id)

    async def play_warning(self, call_id: str, to: WarnTarget) -> None:
        found = self._find(call_id)
        if found is None:
            log.warning("prepaid_warning_no_channel", call_id=call_id)
            return
        link, call, caller = found
        others = [c for c in call.live_channels if c.uniqueid != caller.uniqueid]
        if to == "callee":
            if not others:
                log.warning("prepaid_warning_no_callee", call_id=call_id)
                return
            target, opts = others[0].name, "qwE"
        elif to == "caller":
            target, opts = caller.name, "qwE"
        else:
            target, opts = caller.name, "qBE"
        fields = [
            ("Channel", PROMPT_CHANNEL),
            ("Application", "ChanSpy"),
            ("Data", f"{target},{opts}"),
            ("Async", "true"),
        ]
        try:
            await link.client.action("Originate", fields)
        except AmiError as exc:
            log.warning("prepaid_warning_failed", call_id=call_id, error=str(exc))
            return
        log.info("prepaid_warning_played", call_id=call_id, to=to)


class PrepaidCalls:
    """Built by wiring; `authorize_card` is called by the authorize route for `card=`."""

    def __init__(
        self,
        redis: RedisClient,
        site: str,
        asterisks: Mapping[str, AsteriskLinkLike],
        events: EventSink | None = None,
        *,
        redis_url: str,
        is_emergency: Callable[[str], bool],
        pin_secret: str = "",
        clock: Clock | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self._asterisks = asterisks
        self._is_emergency = is_emergency
        self._pin_secret = pin_secret  # for the PIN IVR route (not wired yet)
        self.plans = RatePlanStore(redis, self.clock)
        self.service = SessionService(
            redis, RatePlanCache(self.plans, self.clock), self.clock,
            gateway=site, is_emergency=is_emergency, events=events,
        )
        self.control = AmiCallControl(asterisks)
        self._transport = ThreadedDebits.from_url(redis_url)
        self.scheduler = DebitScheduler(
            self.service, self.control, self.clock, events=events, transport=self._transport,
        )
        self._unsubscribe: list[Callable[[], None]] = []

    async def start(self) -> None:
        await self.scheduler.resume()
        self.scheduler.start()
        for link in self._asterisks.values():
            self._unsubscribe.append(link.channels.subscribe(_PrepaidListener(self.scheduler)))

    async def close(self) -> None:
        for unsub in self._unsubscribe:
            unsub()
        self._unsubscribe.clear()
        await self.scheduler.stop()
        await self._transport.close()

    async def authorize_card(self, req: AgiRequest, call: CallRequest, card: str) -> Decision:
        areq = AuthorizeRequest(
            account=card, destination=call.dest, call_id=req.call_id,
            caller=req.caller, tenant=call.tenant,
        )
        try:
            auth = await self.service.authorize(areq)
        except (RedisError, OSError) as exc:
            if self._is_emergency(call.dest):
                log.warning("prepaid_emergency_without_backend", call_id=req.call_id,
                            error=str(exc))
                return Decision("ALLOW", "emergency", 0, "", 0)
            log.warning("prepaid_backend_unavailable", call_id=req.call_id, card=card,
                        error=str(exc))
            return Decision.deny("backend_unavailable", CAUSE_TEMPORARY_FAILURE)
        if not auth.allowed:
            return Decision.deny(auth.reason, auth.cause)
        return Decision("ALLOW", auth.reason, 0, auth.session_id, auth.max_seconds)


def _session_of(call: CallInfo) -> str:
    for ch in call.channels:
        lease = ch.variables.get(LEASE_VAR, "")
        if lease:
            return lease
    return call.variables.get(LEASE_VAR, "")


class _PrepaidListener:
    """ChannelTable listener: answer starts the debit ticker, hangup settles the session."""

    def __init__(self, scheduler: DebitScheduler) -> None:
        self._scheduler = scheduler

    def call_started(self, call: CallInfo) -> None:
        return None

    async def call_answered(self, call: CallInfo) -> None:
        sid = _session_of(call)
        if not sid:
            return
        try:
            # the table's times are monotonic: let the scheduler stamp with its own clock
            await self._scheduler.answered(sid)
        except PrepaidError as exc:  # a limits lease, not a prepaid session
            log.debug("prepaid_answer_ignored", session=sid, error=str(exc))

    async def call_ended(self, call: CallInfo, billsec: int, cause: int | None) -> None:
        sid = _session_of(call)
        if not sid:
            return
        # which side hung up first is not in CallInfo; the scheduler says `credit` for its own
        ended_by: EndedBy = "caller"
        try:
            await self._scheduler.hung_up(sid, None, cause or 16, ended_by)
        except PrepaidError as exc:
            log.debug("prepaid_hangup_ignored", session=sid, error=str(exc))

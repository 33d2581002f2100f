"""Prepaid cards on live calls: the gateway side of prepaid (authorize, AMI events, AMI actions).

A card call holds two things under one id, CALLGATE_LEASE: the limits lease (acquired
first, by the authorize route) and the prepaid session, opened with that same id
(`ACCOUNT~LEASE` inside prepaid, found again from the lease alone). If the card refuses
(no_credit, no_route, card_blocked), the lease is released at once and the call is denied
with the card's reason. `release` with that lease, or the AMI Hangup of the call, ends both.

prepaid never talks AMI (DESIGN); this module gives it a `CallControl` over the AMI clients
(Hangup to cut off, Originate of a ChanSpy prompt to warn), feeds the channel tables'
answer/hangup into the `DebitScheduler`, and tells it who ended each call.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import structlog
from redis.exceptions import RedisError

from ami import AmiError, CallInfo, ChannelInfo, ChannelTable
from ami.client import AmiClient
from ami.frames import Message
from gateway.agi import AgiRequest, Decision
from gateway.agi.decision import CAUSE_TEMPORARY_FAILURE, LEASE_VAR
from gateway.config import Config, PrepaidConfig
from gateway.prepaid_end_records import EndRecord, EndRecords
from limits import CallRequest
from prepaid.cards import Card, CardService
from prepaid.clock import Clock, ScaledClock, SystemClock
from prepaid.control import EV_LOW_BALANCE, EndedBy, EventSink, WarnTarget
from prepaid.debit_transport import AsyncDebits, DebitTransport, ThreadedDebits
from prepaid.errors import BadInput, PrepaidError
from prepaid.keys import split_session_id
from prepaid.pins import PinGuard, PinHasher, PinPolicy
from prepaid.rateplan_store import RatePlanCache, RatePlanStore
from prepaid.scheduler import DebitScheduler
from prepaid.scripts import RedisClient
from prepaid.sessions import AuthorizeRequest, SessionService
from prepaid.vouchers import VoucherService

log = structlog.get_logger(__name__)

MAXSEC_VAR = "CALLGATE_MAXSEC"
# A `release` seen while AMI is up waits this long for the call's Hangup to be handled,
# which says when it was answered and who hung up first; the session is settled by
# whichever comes first (idempotent).
RELEASE_GRACE_S = 3.0


class AsteriskLinkLike(Protocol):
    """gateway.wiring.AsteriskLink, without importing wiring (it imports us)."""

    @property
    def client(self) -> AmiClient: ...

    @property
    def channels(self) -> ChannelTable: ...


class LeaseReleaser(Protocol):
    async def release(self, lease_id: str, *, by: str) -> bool: ...


class SyncPublisher(Protocol):
    def publish(self, kind: str, payload: dict[str, Any], tenant: str | None = None) -> None: ...


class MqttPrepaidEvents:
    """prepaid's EventSink over the gateway's MQTT publisher (callgate/SITE/events/prepaid/...);
    also remembers the accounts that went low, for the wallboard."""

    def __init__(self, publisher: SyncPublisher | None, remember: int = 1000) -> None:
        self._publisher = publisher
        self.low: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    async def publish(self, kind: str, payload: Mapping[str, Any]) -> None:
        if kind == EV_LOW_BALANCE and payload.get("account"):
            self.low[str(payload["account"])] = None
            self.low.move_to_end(str(payload["account"]))
            while len(self.low) > self._remember:
                self.low.popitem(last=False)
        if self._publisher is None:
            return
        body = dict(payload)
        self._publisher.publish(kind, body, tenant=str(body.get("tenant") or "") or None)


class AmiCallControl:
    """prepaid.control.CallControl over AMI: Hangup to cut off, ChanSpy Originate to warn."""

    def __init__(self, asterisks: Mapping[str, AsteriskLinkLike],
                 prompt_channel: str = "Local/warning@gw-prompt-player") -> None:
        self._asterisks = asterisks
        self._prompt_channel = prompt_channel

    def _find(self, call_id: str) -> tuple[AsteriskLinkLike, CallInfo, ChannelInfo] | None:
        for link in self._asterisks.values():
            chan = link.channels.channel(call_id)
            if chan is None:
                continue
            call = link.channels.call(chan.linkedid)
            if call is not None:
                return link, call, chan
        return None

    def is_up(self, call_id: str) -> bool:
        return self._find(call_id) is not None

    async def cut_off(self, call_id: str) -> bool | None:
        """True when Asterisk hung a channel of the call up for us; False when the call
        was gone already (no channel here, or every Hangup got `No such channel`); None
        when no answer came."""
        found = self._find(call_id)
        if found is None:
            log.warning("prepaid_cut_off_no_channel", call_id=call_id)
            return False
        link, call, _ = found
        hit: bool | None = False
        for ch in call.live_channels:
            try:
                res = await link.client.action("Hangup", [("Channel", ch.name), ("Cause", "16")])
            except AmiError as exc:
                log.warning("prepaid_cut_off_failed", call_id=call_id, channel=ch.name,
                            error=str(exc))
                hit = None if hit is False else hit
                continue
            if res.ok:
                hit = True
        log.info("prepaid_cut_off_sent", call_id=call_id, hung_up=hit)
        return hit

    async def play_warning(self, call_id: str, to: WarnTarget) -> None:
        found = self._find(call_id)
        if found is None:
            log.warning("prepaid_warning_no_channel", call_id=call_id)
            return
        link, call, caller = found
        others = [c for c in call.live_channels
                  if c.uniqueid != caller.uniqueid and c.bridge_id]
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
            ("Channel", self._prompt_channel),
            ("Application", "ChanSpy"),
            ("Data", f"{target},{opts}"),
            ("Async", "true"),
        ]
        try:
            await link.client.action("Originate", fields)
        except AmiError as exc:
            log.warning("prepaid_warning_failed", call_id=call_id, error=str(exc))
            return
        log.info("prepaid_warning_sent", call_id=call_id, to=to, spy=target)


class HangupOrder:
    """Which channel of a call hung up first, from AMI HangupRequest/SoftHangupRequest/
    Hangup (the channel table keeps no order): caller or callee for the CDR."""

    def __init__(self, remember: int = 50_000) -> None:
        self._first: OrderedDict[str, str] = OrderedDict()  # linkedid -> uniqueid
        self._linked: OrderedDict[str, str] = OrderedDict()  # uniqueid -> linkedid
        self._remember = remember

    def on_event(self, msg: Message) -> None:
        uid, linked = msg.get("Uniqueid") or "", msg.get("Linkedid") or ""
        if not uid or not linked:
            return
        if msg.name.lower() in ("hangup", "hanguprequest", "softhanguprequest"):
            self._first.setdefault(linked, uid)
            self._linked.setdefault(uid, linked)
            for d in (self._first, self._linked):
                while len(d) > self._remember:
                    d.popitem(last=False)

    def ended_by(self, caller_uid: str) -> EndedBy:
        linked = self._linked.get(caller_uid, caller_uid)
        first = self._first.get(linked)
        if first is None or first == caller_uid:
            return "caller"
        return "callee"

    def forget(self, linkedid: str) -> None:
        self._first.pop(linkedid, None)


class PrepaidCalls:
    """Built by wiring; the authorize route calls `authorize_card` for `card=`, the release
    route `release`; the `prepaid` IVR route (gateway.prepaid_ivr) uses `pins` and `cards`."""

    def __init__(
        self,
        redis: RedisClient,
        site: str,
        asterisks: Mapping[str, AsteriskLinkLike],
        limits: LeaseReleaser,
        events: EventSink | None = None,
        *,
        redis_url: str | None,
        is_emergency: Callable[[str], bool],
        settings: PrepaidConfig | None = None,
        clock: Clock | None = None,
        renew_lead_s: float = 2.0,
        coalesce_s: float = 0.25,
        release_grace_s: float = RELEASE_GRACE_S,
    ) -> None:
        self.settings = settings or PrepaidConfig()
        self.clock = clock or SystemClock()
        self._asterisks = asterisks
        self._limits = limits
        self._is_emergency = is_emergency
        self._events = events
        self._release_grace = release_grace_s
        self.plans = RatePlanStore(redis, self.clock)
        self.service = SessionService(
            redis, RatePlanCache(self.plans, self.clock), self.clock,
            gateway=site, is_emergency=is_emergency, events=events,
        )
        scripts = self.service.scripts
        self.cards = CardService(redis, self.clock, scripts)
        self.hasher: PinHasher | None = None
        self.pins: PinGuard | None = None
        self.vouchers: VoucherService | None = None
        if self.settings.pin_secret:
            s = self.settings
            self.hasher = PinHasher(s.pin_secret.encode())
            policy = PinPolicy(card_failures=s.card_failures, card_lock_s=s.lock_seconds,
                               caller_failures=s.caller_failures, caller_lock_s=s.lock_seconds)
            self.pins = PinGuard(redis, self.hasher, self.clock, events, policy, scripts)
            self.vouchers = VoucherService(redis, self.hasher, self.clock, self.cards, scripts)
        self.control = AmiCallControl(asterisks, self.settings.prompt_channel)
        self.ends = EndRecords(asterisks)
        # debits from a thread of their own when a plain Redis URL is known (see
        # prepaid.debit_transport), else on the gateway's asyncio client
        self._transport: DebitTransport = (
            ThreadedDebits.from_url(redis_url) if redis_url else AsyncDebits(self.service)
        )
        self.scheduler = DebitScheduler(
            self.service, self.control, self.clock, events=events, transport=self._transport,
            renew_lead_s=renew_lead_s, coalesce_s=coalesce_s,
        )
        self.hangups = HangupOrder()
        self._unsubscribe: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # sid -> (ended_at, call_id, lease): `release` seen, waiting for the AMI Hangup
        self._releasing: dict[str, tuple[float, str, str]] = {}
        self._sweeping = asyncio.Lock()

    async def low_cards(self) -> list[Card]:
        """The wallboard's "cards running low": the accounts whose balance fell under their
        plan's low_balance on this gateway (the last 1000), as they are now."""
        if not isinstance(self._events, MqttPrepaidEvents):
            return []
        found = []
        for account in list(self._events.low):
            try:
                card = await self.cards.get(account)
            except PrepaidError:
                continue
            found.append(card)
        return found

    async def start(self) -> None:
        try:
            await self.scheduler.resume()
        except (RedisError, OSError) as exc:
            log.warning("prepaid_resume_failed", error=str(exc), retry="next start")
        self.scheduler.start()
        for asterisk, link in self._asterisks.items():
            self._unsubscribe.append(link.channels.subscribe(_PrepaidListener(self, asterisk)))
            for name in ("Hangup", "HangupRequest", "SoftHangupRequest"):
                self._unsubscribe.append(link.client.subscribe(name, self.hangups.on_event))

    async def close(self) -> None:
        for unsub in self._unsubscribe:
            unsub()
        self._unsubscribe.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sid, (ended_at, call_id, _) in list(self._releasing.items()):  # no waiting now
            await self._hung_up(sid, ended_at, 16, self.hangups.ended_by(call_id))
        self._releasing.clear()
        await self.scheduler.stop()
        await self._transport.close()

    # -- the authorize / release routes ----------------------------------------------------

    async def authorize_card(
        self, req: AgiRequest, call: CallRequest, card: str, granted: Decision
    ) -> Decision:
        """`granted` is the limits decision; on ALLOW its lease also names the session."""
        if granted.result != "ALLOW":
            return granted
        blog = log.bind(call_id=req.call_id, card=card, tenant=call.tenant)
        areq = AuthorizeRequest(
            account=card, destination=call.dest, call_id=req.call_id,
            caller=req.caller, tenant=call.tenant, lease=granted.lease,
        )
        try:
            auth = await self.service.authorize(areq)
        except (RedisError, OSError) as exc:
            if granted.reason == "emergency" or self._is_emergency(call.dest):
                blog.warning("prepaid_emergency_without_backend", error=str(exc))
                return granted
            blog.warning("prepaid_backend_unavailable", error=str(exc))
            await self._give_back(granted.lease)
            return Decision.deny("backend_unavailable", CAUSE_TEMPORARY_FAILURE)
        except PrepaidError as exc:
            blog.warning("prepaid_bad_request", error=str(exc))
            await self._give_back(granted.lease)
            return Decision.deny("bad_request", 21)
        if not auth.allowed:
            await self._give_back(granted.lease)
            return Decision.deny(auth.reason, auth.cause)
        maxsec = _min_limit(granted.maxsec, auth.max_seconds)
        reason = granted.reason if granted.reason in ("emergency", "surcharge") else auth.reason
        return Decision("ALLOW", reason, 0, granted.lease, maxsec)

    async def _give_back(self, lease: str) -> None:
        freed = await self._limits.release(lease, by="prepaid_denied")
        log.info("prepaid_lease_released", lease=lease, freed=freed)

    async def release(self, lease: str, call_id: str = "",
                      answered_ms: int | None = None,
                      callee_answered: float | None = None) -> None:
        """The `release` route (or a decision never delivered): end the card's session.

        The `h` extension passes when the callee answered (`callee_answered`, epoch s, from
        the Dial U() subroutine) and Dial's ANSWEREDTIME_MS: when AMI is down (no Answer
        seen, no Hangup coming), a call that was answered is charged from the callee's
        answer, else from end - answered_ms, never from before the decision (see
        sweep_gone for why)."""
        try:
            sid = await self._session_of(lease, call_id)
        except (RedisError, OSError) as exc:
            log.warning("prepaid_release_lookup_failed", lease=lease, error=str(exc))
            return
        if sid is None:
            return
        ended_at = self.clock.now()
        answered_at = await self._answer_from(sid, ended_at, answered_ms, callee_answered)
        if call_id and self._all_logged_in():
            # AMI says when the call was answered and who hung up first: settle from its
            # Hangup, and only if that never comes, here after the grace. Not only while
            # the channel is up: the table drops it at the Hangup frame, but this call's
            # answer may still wait in the listener's queue, and settling now would charge
            # an answered call nothing (a replay after call_ended settled is a no-op).
            self._releasing[sid] = (ended_at, call_id, lease)
            self._spawn(self._settle_later(sid, ended_at, call_id, lease, answered_at))
            return
        await self._hung_up(sid, ended_at, 16, self.hangups.ended_by(call_id), answered_at)
        await self.ends.forget(lease)  # settled: the h extension's end record is not needed

    async def _answer_from(self, sid: str, ended_at: float, answered_ms: int | None,
                           callee_answered: float | None = None) -> float | None:
        """When the call was answered by the `h` extension's account, for a session the
        gateway never saw answered; None if not answered or not known."""
        record = EndRecord(ended_at, answered_ms, callee_answered)
        if record.answered_at is None:
            return None
        try:
            created_ms = (await self.service.get(sid)).created_ms
        except (PrepaidError, RedisError, OSError):
            return None
        return record.charged_from(created_ms / 1000 if created_ms else None)

    async def sweep_gone(self) -> None:
        """After an AMI (re)login: calls this gateway debits whose channel Asterisk no
        longer has ended while we could not see them (gateway down, AMI cut). They are
        settled at their real end, as the `h` extension recorded it in AstDB
        (gateway.prepaid_end_records), and the record deleted. Without a record, at the end
        of their paid time (or now, if earlier): the last moment the gateway knew them up,
        never charging time nobody paid for twice.

        Calls authorized before a restart and never seen answered (`waiting_calls`) are
        checked too: answered and hung up while the gateway was down, they are charged the
        answered duration the record carries (Dial's ANSWEREDTIME_MS: answer = end -
        answered), else settled unanswered. A session that has an answer time keeps it:
        the gateway saw the callee answer on AMI, while ANSWEREDTIME_MS is the calling
        channel's up time, which also counts the IVR and the ringing when the dialplan
        answered the caller first (the `prepaid` route does). For the same reason an
        answer taken from the record is never put before the session was authorized (no
        callee answers before the Dial): what remains of that error is the ringing, which
        is then charged; exact when the Dial is the first to answer the calling channel
        (`authorize` with card= and no Answer() before it). Settling is once-only
        (settle.lua): a second sweep or a late `release` gets the same CDR.

        Runs when a channel table has applied a listing (`table_resynced`) and after an
        ownership takeover; only when every table is exact for its current AMI session,
        since a call missing from a stale table is not a call that ended."""
        async with self._sweeping:  # one at a time: each sees what the last one settled
            await self._sweep_gone_once()

    async def _sweep_gone_once(self) -> None:
        if not self._all_logged_in() or not all(
            link.channels.synced_login == link.client.logins
            for link in self._asterisks.values()
        ):
            log.info("prepaid_sweep_postponed", reason="a channel table awaits its listing")
            return
        # Judged against the listing as it stands now: a call that ends while this pass
        # settles the others was seen ending, and call_ended settles it.
        gone = [c for c in self.scheduler.live_calls() if not self.control.is_up(c[1])]
        waiting = [c for c in self.scheduler.waiting_calls() if not self.control.is_up(c[1])]
        for sid, call_id, paid_end in gone:
            log.warning("prepaid_call_gone_unseen", session=sid, call_id=call_id)
            lease = _lease_of_session(sid)
            end = await self.ends.end_of(lease) if lease else None
            now = self.clock.now()
            if end is None:
                log.warning("prepaid_end_unknown", session=sid, call_id=call_id,
                            charged_until=min(now, paid_end))
                await self._hung_up(sid, min(now, paid_end), 16, "system")
                continue
            await self._hung_up(sid, min(now, end.end), 16, await self._who(sid, end.end))
            await self.ends.forget(lease)
        for sid, call_id, authorized_at in waiting:
            log.warning("prepaid_call_gone_unseen", session=sid, call_id=call_id,
                        answered="unseen")
            lease = _lease_of_session(sid)
            end = await self.ends.end_of(lease) if lease else None
            now = self.clock.now()
            if end is None:  # an older dialplan, or the record lost: nothing says answered
                log.warning("prepaid_end_unknown", session=sid, call_id=call_id,
                            charged_until=None)
                await self._hung_up(sid, now, 16, "system")
                continue
            answered_at = end.charged_from(authorized_at)
            if answered_at is not None:
                log.info("prepaid_answer_from_end_record", session=sid, call_id=call_id,
                         answered_ms=end.answered_ms, exact=end.exact,
                         charged_from=answered_at)
            await self._hung_up(sid, min(now, end.end), 16, await self._who(sid, end.end),
                                answered_at)
            await self.ends.forget(lease)

    async def _who(self, sid: str, end: float) -> EndedBy:
        """Who ended a call nobody saw end: `limit` when it lasted the card's
        CALLGATE_MAXSEC from the decision (the example's TIMEOUT(absolute) counts from
        there, and no gateway was cutting it off), else `system` (not known)."""
        try:
            rec = await self.service.get(sid)
        except (PrepaidError, RedisError, OSError):
            return "system"
        if rec.max_s > 0 and rec.created_ms and end * 1000 - rec.created_ms >= rec.max_s * 1000:
            return "limit"
        return "system"

    async def _settle_later(self, sid: str, ended_at: float, call_id: str,
                            lease: str, answered_at: float | None = None) -> None:
        await asyncio.sleep(self._release_grace)
        if self._releasing.pop(sid, None) is not None:  # else call_ended settled it
            await self._hung_up(sid, ended_at, 16, self.hangups.ended_by(call_id),
                                answered_at)
            await self.ends.forget(lease)

    def _when(self, monotonic: float | None) -> float | None:
        """A channel-table stamp (time.monotonic() when the AMI frame was read) on this
        gateway's prepaid clock; None stays None (the scheduler then stamps now)."""
        if monotonic is None:
            return None
        rate = self.clock.scale if isinstance(self.clock, ScaledClock) else 1.0
        return self.clock.now() - max(0.0, time.monotonic() - monotonic) * rate

    def _all_logged_in(self) -> bool:
        return bool(self._asterisks) and all(
            link.client.logged_in for link in self._asterisks.values()
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _session_of(self, lease: str, call_id: str = "") -> str | None:
        sid = await self.service.session_for_lease(lease)
        if sid is None and call_id:
            sid = await self.service.session_for_call(call_id)
        return sid

    async def _hung_up(
        self, sid: str, ended_at: float | None, cause: int, ended_by: EndedBy,
        answered_at: float | None = None,
    ) -> None:
        try:
            await self.scheduler.hung_up(sid, ended_at, cause, ended_by, answered_at)
        except PrepaidError as exc:
            log.warning("prepaid_hangup_ignored", session=sid, error=str(exc))

    # -- AMI side --------------------------------------------------------------------------

    async def call_answered(self, call: CallInfo, asterisk: str = "") -> None:
        lease = _lease_of(call)
        if not lease:
            return
        try:
            sid = await self._session_of(lease)
            if sid is None:
                return
            # when the frame came, not when this queued listener got to it: a late answer
            # stamp would charge less than the call's real duration
            await self.scheduler.answered(sid, self._when(call.answered_at), origin=asterisk)
        except (PrepaidError, RedisError, OSError) as exc:
            log.warning("prepaid_answer_failed", lease=lease, error=str(exc))

    async def _reached_limit(self, sid: str, call: CallInfo, billsec: int,
                             ended_at: float | None) -> bool:
        """Did the dialplan's own limit end this call (CDR `limit`)? AMI cannot tell: an
        absolute timeout looks like any hangup of the caller's channel (d2 = d1). The
        example backstop, TIMEOUT(absolute) = CALLGATE_MAXSEC + margin, is set right after
        this gateway's decision and counts from there, ringing included; so the caller's
        side going first at least CALLGATE_MAXSEC after the decision is the limit. Not
        `billsec >= MAXSEC`: a callee that rang longer than the margin leaves billsec
        short of MAXSEC when the backstop fires. A caller who hangs up in the last seconds
        before the backstop is counted as the limit too (nothing tells them apart)."""
        maxsec = _int(call.variables.get(MAXSEC_VAR, ""))
        if maxsec <= 0:
            return False
        if billsec >= maxsec:  # a limit counted from the answer (Dial's L()) or later
            return True
        end = ended_at if ended_at is not None else self.clock.now()
        started = self._when(call.started_at)
        if started is not None and end - started < maxsec:
            return False  # not even MAXSEC since the call began, before the decision
        try:
            decided_ms = (await self.service.get(sid)).created_ms
        except (PrepaidError, RedisError, OSError):
            return False
        return bool(decided_ms) and end * 1000 - decided_ms >= maxsec * 1000

    async def call_ended(self, call: CallInfo, billsec: int) -> None:
        lease = _lease_of(call)
        if not lease:
            return
        try:
            sid = await self._session_of(lease)
        except (RedisError, OSError) as exc:
            log.warning("prepaid_hangup_lookup_failed", lease=lease, error=str(exc))
            return
        if sid is None:
            return
        caller = _caller_uid(call, sid)
        ended_at = self._when(call.ended_at)
        ended_by = self.hangups.ended_by(caller)
        if ended_by == "caller" and await self._reached_limit(sid, call, billsec, ended_at):
            ended_by = "limit"
        self.hangups.forget(call.linkedid)
        released = self._releasing.pop(sid, None)
        await self._hung_up(sid, ended_at, call.hangup_cause or 16, ended_by)
        if released is not None:  # `release` came first: the h extension's record is done
            await self.ends.forget(released[2])


def debit_url(cfg: Config) -> str | None:
    """The Redis URL the debit thread may open itself; None (asyncio client) for a cluster,
    a sentinel or anything redis-py's plain client cannot open from a URL."""
    if cfg.redis.cluster:
        return None
    url = cfg.redis.url or (
        f"unix://{Path(cfg.daemon.state_dir).resolve() / 'redis' / 'redis.sock'}"
    )
    return url if url.startswith(("redis://", "rediss://", "unix://")) else None


def _min_limit(a: int, b: int) -> int:
    """The tighter of two CALLGATE_MAXSEC values, 0 meaning no limit."""
    if a and b:
        return min(a, b)
    return a or b


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _lease_of(call: CallInfo) -> str:
    for ch in call.channels:
        lease = ch.variables.get(LEASE_VAR, "")
        if lease:
            return lease
    return call.variables.get(LEASE_VAR, "")


def _lease_of_session(sid: str) -> str:
    """ACCOUNT~LEASE -> LEASE (the h extension's AstDB key), '' if not of that shape."""
    try:
        return split_session_id(sid)[1]
    except BadInput:
        return ""


def _caller_uid(call: CallInfo, sid: str) -> str:
    """The channel the decision was set on (it carries the lease): the caller's."""
    for ch in call.channels:
        if ch.variables.get(LEASE_VAR, ""):
            return ch.uniqueid
    return call.linkedid


class _PrepaidListener:
    """ChannelTable listener: answer starts the debit ticker, hangup settles the session."""

    def __init__(self, calls: PrepaidCalls, asterisk: str = "") -> None:
        self._calls = calls
        self._asterisk = asterisk  # the call's origin: whose event owner debits it

    def call_started(self, call: CallInfo) -> None:
        return None

    async def call_answered(self, call: CallInfo) -> None:
        await self._calls.call_answered(call, self._asterisk)

    async def call_ended(self, call: CallInfo, billsec: int, cause: int | None) -> None:
        await self._calls.call_ended(call, billsec)

    async def table_resynced(self) -> None:
        await self._calls.sweep_gone()

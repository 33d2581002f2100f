"""Connects the `authorize`/`release` AGI routes and Asterisk's channel events to limits/.

Every slot is released exactly once (DESIGN invariant 1), by whichever comes first: the
AMI Hangup of the call, the `release` route, lease expiry or reconciliation; limits/ makes
the later ones no-ops. This module decides *when* each of those runs:

- the call's last channel hangs up (channel table `call_ended`) -> release its leases;
- every `lease_ttl / 3` the leases of calls the channel tables see up are renewed, and
  leases whose deadline passed are swept, but only while every Asterisk's AMI is logged
  in (otherwise our own live calls, which we cannot see, would be swept);
- after every AMI (re)login, counters are reconciled against the channels Asterisk
  reports (Status with the CALLGATE_LEASE and CALLGATE_REQUEST variables).

Without any [[asterisk]] there is no way to see calls: leases are then released only by
the `release` route and are never swept, which the daemon logs at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import structlog

from ami import AmiError, CallInfo, ChannelTable
from ami.client import AmiClient
from gateway.agi import AgiError, AgiRequest, AgiSession, Decision, Router, apply_decision
from gateway.agi.decision import LEASE_VAR, REQUEST_VAR
from gateway.call_args import call_request, decode_request, encode_request
from gateway.devices.enforcement import DeviceGate
from gateway.event_owner import EventOwnership
from gateway.metrics import Metrics
from gateway.prepaid_end_records import parse_epoch
from limits import (
    BackendUnavailable,
    CallRequest,
    InvalidRequest,
    LimitsService,
    ReconcileReport,
)
from limits import Decision as LimitDecision

log = structlog.get_logger(__name__)



class EventSink(Protocol):
    def publish(self, kind: str, payload: dict[str, Any], tenant: str | None = None) -> None: ...


class AsteriskView(Protocol):
    """What call control needs of one Asterisk: its AMI session and channel table."""

    client: AmiClient
    channels: ChannelTable


class CardCalls(Protocol):
    """gateway.prepaid_calls.PrepaidCalls as seen from here (`card=` calls)."""

    async def authorize_card(self, req: AgiRequest, call: CallRequest, card: str,
                             granted: Decision) -> Decision: ...

    async def release(self, lease: str, call_id: str = "",
                      answered_ms: int | None = None,
                      callee_answered: float | None = None) -> None: ...


class CallControl:
    def __init__(
        self,
        limits: LimitsService,
        asterisks: Mapping[str, AsteriskView],
        metrics: Metrics,
        events: EventSink | None = None,
        *,
        clock: Callable[[], float] = time.time,
        devices: DeviceGate | None = None,
    ) -> None:
        self._limits = limits
        self._devices = devices  # desk phones: device scope from the profile, device_offline
        self._asterisks = dict(asterisks)
        self._metrics = metrics
        # label children looked up once, not per request
        self._authorize_requests = metrics.agi_requests.labels(route="authorize")
        self._release_requests = metrics.agi_requests.labels(route="release")
        self._decision_counts: dict[tuple[str, str], Any] = {}
        self._events = events
        self._clock = clock
        self._keeper: asyncio.Task[None] | None = None
        self._reconcile_wanted = asyncio.Event()
        self._reconciler: asyncio.Task[None] | None = None
        self.owners: EventOwnership | None = None  # several gateways: see use_event_owner
        self.last_reconcile: ReconcileReport | None = None
        self.reconcile_count = 0
        self.cards: CardCalls | None = None  # prepaid card= calls, set by wiring
        single = list(self._asterisks)
        self._origin = single[0] if len(single) == 1 else ""

    # -- wiring ------------------------------------------------------------------------

    def register(self, router: Router) -> None:
        router.register("authorize", self.authorize)
        router.register("release", self.release_route)

    def use_event_owner(self, owners: EventOwnership) -> None:
        """Reconcile and sweep only as the event owner (gateway/event_owner.py), and
        reconcile at once on becoming it: calls may have ended while no one owned."""
        self.owners = owners
        owners.on_gain(lambda _asterisk, _epoch: self._reconcile_wanted.set())

    def start(self) -> None:
        for name, link in self._asterisks.items():
            link.channels.subscribe(_EndedListener(self, name))
            link.client.on_resync(lambda _items: self._reconcile_wanted.set())
        if not self._asterisks:
            log.warning(
                "limits_without_ami",
                detail="no [[asterisk]]: slots are released only by the release route",
            )
        self._keeper = asyncio.create_task(self._keep_leases(), name="lease-keeper")
        self._reconciler = asyncio.create_task(self._reconcile_loop(), name="reconciler")

    async def close(self) -> None:
        for task in (self._keeper, self._reconciler):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- AGI routes --------------------------------------------------------------------

    async def authorize(self, req: AgiRequest, session: AgiSession) -> None:
        self._authorize_requests.inc()
        try:
            call = call_request(
                req.args, extension=req.extension, call_id=_safe_id(req.call_id),
                origin=self._origin,
            )
        except InvalidRequest as exc:
            log.warning("authorize_bad_request", error=str(exc), args=dict(req.args))
            await self._answer(session, Decision.deny("bad_request", 21), None)
            return
        tokens = structlog.contextvars.bind_contextvars(tenant=call.tenant)
        try:
            if self._devices is not None:
                call, refusal = await self._devices.prepare(call, req.channel)
                if refusal is not None:
                    await self._answer(session, refusal, call)
                    return
            decision = await self._limits.authorize(call)
            answer = _agi_decision(decision)
            if req.args.get("card"):  # one lease holds the slots and the card's session
                answer = await self._card_decision(req, call, answer)
            extra = [(REQUEST_VAR, encode_request(call))] if answer.result == "ALLOW" else []
            await self._answer(session, answer, call, decision, extra)
        finally:  # bound_contextvars without its generator: this runs for every call
            structlog.contextvars.reset_contextvars(**tokens)

    async def _card_decision(self, req: AgiRequest, call: CallRequest,
                             granted: Decision) -> Decision:
        if self.cards is None:
            log.warning("authorize_card_without_prepaid", card=req.args.get("card"))
            if granted.lease:
                await self._limits.release(granted.lease, by="prepaid_off")
            return Decision.deny("bad_request", 21)
        return await self.cards.authorize_card(req, call, req.args["card"], granted)

    async def release_route(self, req: AgiRequest, session: AgiSession) -> None:
        """From the `h` extension; a no-op if the AMI Hangup already released the lease."""
        self._release_requests.inc()
        lease = req.args.get("lease", "")
        freed = await self._limits.release(lease, by="agi")
        # info when this route freed the slots; after the AMI Hangup did, a no-op
        (log.info if freed else log.debug)("release_route", lease=lease, freed=freed)
        if self.cards is not None and lease:
            # from the h extension: the answer of a card call AMI missed
            answered = req.args.get("answered_ms", "")
            await self.cards.release(lease, req.call_id,
                                     int(answered) if answered.isdigit() else None,
                                     parse_epoch(req.args.get("answered_at", "")))

    async def _answer(
        self,
        session: AgiSession,
        decision: Decision,
        call: CallRequest | None,
        limit_decision: LimitDecision | None = None,
        extra: Sequence[tuple[str, str]] = (),
    ) -> None:
        try:
            await apply_decision(session, decision, extra)
        except (AgiError, OSError):
            if decision.lease:  # the channel never learnt its lease: give the slots back
                freed = await self._limits.release(decision.lease, by="agi_failed")
                log.warning("decision_not_delivered", lease=decision.lease, freed=freed)
                if self.cards is not None:
                    await self.cards.release(decision.lease)
            raise
        key = (decision.result, decision.reason)
        counter = self._decision_counts.get(key)
        if counter is None:
            counter = self._decision_counts[key] = self._metrics.decisions.labels(
                result=decision.result, reason=decision.reason)
        counter.inc()
        fields: dict[str, Any] = {
            "result": decision.result, "reason": decision.reason, "cause": decision.cause,
            "lease": decision.lease,
        }
        if call is not None:
            fields.update(direction=call.direction.value, dest=call.dest, trunk=call.trunk,
                          number=call.number)
        if limit_decision is not None and limit_decision.refused_scope:
            fields["refused_scope"] = limit_decision.refused_scope
        if limit_decision is not None and limit_decision.journaled:
            fields["journaled"] = True
        event = {
            "ok": "limit_allowed", "emergency": "limit_emergency", "surcharge": "limit_surcharge",
        }.get(decision.reason, "limit_denied")
        # limits/ (or the part that refused: devices, prepaid) logged the decision itself;
        # one line per decision, so this is only for tracing the AGI side.
        log.debug("agi_decision_sent", **fields)
        if self._events is not None and call is not None:
            kind = {
                "limit_allowed": "call.authorized", "limit_emergency": "emergency",
                "limit_surcharge": "surcharge", "limit_denied": "limit.denied",
            }[event]
            self._events.publish(kind, {"call_id": call.call_id, **fields}, tenant=call.tenant)

    # -- AMI side ----------------------------------------------------------------------

    async def call_ended(self, asterisk: str, call: CallInfo, cause: int | None) -> None:
        leases = {c.variables.get(LEASE_VAR, "") for c in call.channels} - {""}
        for lease in sorted(leases):
            freed = await self._limits.release(lease, by="ami_hangup")
            log.info("call_ended_release", asterisk=asterisk, call_id=call.linkedid,
                     lease=lease, freed=freed, cause=cause)

    def _all_logged_in(self) -> bool:
        return all(link.client.logged_in for link in self._asterisks.values())

    def _live_leases(self) -> list[str]:
        leases: set[str] = set()
        for link in self._asterisks.values():
            for call in link.channels.calls():
                for chan in call.live_channels:
                    lease = chan.variables.get(LEASE_VAR, "")
                    if lease:
                        leases.add(lease)
        return sorted(leases)

    async def _keep_leases(self) -> None:
        interval = max(self._limits.lease_ttl / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            if not self._asterisks:
                continue
            try:
                report = await self._limits.renew(self._live_leases())
                if report.gone:
                    log.warning("lease_renew_gone", leases=list(report.gone)[:20],
                                count=len(report.gone))
                    self._reconcile_wanted.set()
                if self._all_logged_in() and (self.owners is None or self.owners.owns_any()):
                    await self._limits.expire_due()
            except BackendUnavailable as exc:
                log.warning("lease_keeper_backend_down", error=str(exc))
            except Exception:
                log.exception("lease_keeper_failed")

    async def _reconcile_loop(self) -> None:
        while True:
            await self._reconcile_wanted.wait()
            self._reconcile_wanted.clear()
            try:
                report = await self.reconcile()
                if report is not None and report.skipped_young:
                    # Leases too young to judge (their channel variable may not show yet):
                    # look again once they are old enough.
                    await asyncio.sleep(self._limits.reconcile_grace + 0.1)
                    self._reconcile_wanted.set()
            except Exception:
                log.exception("reconcile_failed")
                await asyncio.sleep(1.0)
                self._reconcile_wanted.set()

    async def reconcile(self) -> ReconcileReport | None:
        """Rebuild counters from what every Asterisk says is up; skipped (and retried on
        the next login) unless every configured Asterisk answers, since a call on an
        unreachable server would otherwise lose its slot."""
        names, origins = self._reconcile_scope()
        if self._asterisks and not names:
            log.info("reconcile_skipped", reason="not the event owner of any Asterisk")
            return None
        if not names or not all(self._asterisks[n].client.logged_in for n in names):
            log.info("reconcile_postponed", reason="not every AMI session is logged in")
            return None
        as_of = self._clock()
        live: dict[str, CallRequest | None] = {}
        for name in names:
            link = self._asterisks[name]
            try:
                result = await link.client.action(
                    "Status", [("Variables", f"{LEASE_VAR},{REQUEST_VAR}")]
                )
            except AmiError as exc:
                log.warning("reconcile_postponed", asterisk=name, reason=str(exc))
                self._reconcile_wanted.set()
                return None
            for item in result.events:
                if item.name != "Status":
                    continue
                variables = dict(
                    v.split("=", 1) for v in item.get_all("Variable") if "=" in v
                )
                lease = variables.get(LEASE_VAR, "")
                if lease:
                    req = decode_request(variables.get(REQUEST_VAR, ""))
                    live[lease] = live.get(lease) or req
        report = await self._limits.reconcile(live, as_of=as_of, origins=origins)
        self.last_reconcile = report
        self.reconcile_count += 1
        if report.fixed:
            log.warning("reconcile_fixed", live_leases=len(live), **report.summary())
        else:
            log.info("reconcile_clean", live_leases=len(live), renewed=report.renewed,
                     skipped_young=report.skipped_young)
        return report


    def _reconcile_scope(self) -> tuple[list[str], set[str] | None]:
        """Asterisks to reconcile and the lease origins to judge: every one (and leases
        of unknown origin) when this gateway owns all or ownership is off, else its own."""
        if self.owners is None or self.owners.owns_all():
            return list(self._asterisks), None
        owned = [n for n in self._asterisks if self.owners.is_owner(n)]
        return owned, set(owned)


class _EndedListener:
    """A ChannelTable listener that forwards call ends to CallControl."""

    def __init__(self, control: CallControl, asterisk: str) -> None:
        self._control = control
        self._asterisk = asterisk

    def call_started(self, call: CallInfo) -> None:
        return None

    def call_answered(self, call: CallInfo) -> None:
        return None

    async def call_ended(self, call: CallInfo, billsec: int, cause: int | None) -> None:
        await self._control.call_ended(self._asterisk, call, cause)


def _agi_decision(decision: LimitDecision) -> Decision:
    return Decision(
        decision.result.value, decision.reason.value, decision.cause, decision.lease_id,
        decision.maxsec,
    )


def _safe_id(value: str) -> str:
    return value if value and len(value) <= 64 else ""


__all__ = ["CallControl", "EventSink"]

"""Call life-cycle events (`call.started`, `call.answered`, `call.ended`) next to the
gateway's decisions, for MQTT and the wallboard.

`CallEvents` sits where CallControl's EventSink goes and forwards every decision to the
real sinks (the MQTT publisher, the wallboard's decision tally); `listener(asterisk)`
subscribes to a ChannelTable and publishes each call's start, answer and end to the
same sinks.

The channel tables know no tenants (ami/ must not), so the tenant of a call comes from
what the gateway decided about it: the `CALLGATE_REQUEST` variable written on allowed
calls, else the decision seen for one of the call's channels (denied calls carry no
request). `call.started` usually precedes the decision (Asterisk creates the channel,
then the dialplan asks us), so it carries a tenant only when the decision was already
seen. `call_id` is Asterisk's Linkedid; `lease` joins an event to its `call.authorized`.

Publishing never blocks and never raises into a call: a sink that fails is logged and
the others still get the event.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from ami import CallInfo
from gateway.agi.decision import LEASE_VAR, REQUEST_VAR
from gateway.call_args import decode_request

RESULT_VAR = "CALLGATE_RESULT"
REASON_VAR = "CALLGATE_REASON"
DECISION_KINDS = frozenset({"call.authorized", "limit.denied", "emergency", "surcharge"})


class EventSink(Protocol):
    def publish(self, kind: str, payload: dict[str, Any], tenant: str | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class _Decided:
    tenant: str
    lease: str


class CallEvents:
    """An EventSink for CallControl that fans decisions out, plus the channel-table
    listeners that add the calls' life cycle; `sinks` may contain None (not configured)."""

    def __init__(self, sinks: Iterable[EventSink | None], *, remember: int = 20_000,
                 log: Any = None) -> None:
        self._sinks = [s for s in sinks if s is not None]
        self._decided: OrderedDict[str, _Decided] = OrderedDict()
        self._remember = remember
        self._log = log if log is not None else structlog.get_logger(__name__)

    def publish(self, kind: str, payload: dict[str, Any], tenant: str | None = None) -> None:
        if kind in DECISION_KINDS and tenant:
            call_id = str(payload.get("call_id") or "")
            if call_id:
                self._decided[call_id] = _Decided(tenant, str(payload.get("lease") or ""))
                self._decided.move_to_end(call_id)
                while len(self._decided) > self._remember:
                    self._decided.popitem(last=False)
        self._forward(kind, payload, tenant)

    def listener(self, asterisk: str) -> CallEventListener:
        """The ChannelTable listener for one Asterisk (`table.subscribe(...)`)."""
        return CallEventListener(self, asterisk)

    def life_cycle(self, kind: str, asterisk: str, call: CallInfo, billsec: int = 0,
                   cause: int | None = None) -> None:
        """Publish `call.started`, `call.answered` or `call.ended` (with billsec and the
        Q.850 cause, None when the call vanished while AMI was down)."""
        ended = kind == "call.ended"
        payload, tenant = self._describe(asterisk, call, forget=ended)
        if ended:
            duration = (call.ended_at - call.started_at) if call.ended_at is not None else 0.0
            payload.update(
                answered=call.answered, billsec=billsec, duration=max(0, int(duration)),
                cause=cause, cause_txt=call.hangup_cause_txt, ended_by=call.ended_by,
                dial_statuses=list(call.dial_statuses),
                result=call.variables.get(RESULT_VAR, ""),
                reason=call.variables.get(REASON_VAR, ""),
            )
        self._forward(kind, payload, tenant)

    def _forward(self, kind: str, payload: dict[str, Any], tenant: str | None) -> None:
        for sink in self._sinks:
            try:
                sink.publish(kind, payload, tenant)
            except Exception:
                self._log.exception("call_event_sink_failed", kind=kind,
                                    sink=type(sink).__name__)

    def _decision_of(self, call: CallInfo, *, forget: bool) -> _Decided | None:
        found = None
        for chan in call.channels:
            hit = (self._decided.pop(chan.uniqueid, None) if forget
                   else self._decided.get(chan.uniqueid))
            found = found or hit
        return found

    def _describe(self, asterisk: str, call: CallInfo, *,
                  forget: bool = False) -> tuple[dict[str, Any], str | None]:
        decided = self._decision_of(call, forget=forget)
        request = decode_request(call.variables.get(REQUEST_VAR, ""))
        tenant = request.tenant if request is not None else (
            decided.tenant if decided is not None else None)
        first = call.channels[0] if call.channels else None
        lease = call.variables.get(LEASE_VAR, "") or (decided.lease if decided else "")
        payload: dict[str, Any] = {
            "call_id": call.linkedid,
            "asterisk": asterisk,
            "lease": lease,
            "channel": first.name if first else "",
            "caller": first.caller_num if first else "",
            "exten": first.exten if first else "",
        }
        if request is not None:
            payload.update(direction=request.direction.value, dest=request.dest,
                           trunk=request.trunk or "", agi_call_id=request.call_id)
        return payload, tenant


class CallEventListener:
    """Publishes one Asterisk's calls as they start, are answered and end."""

    def __init__(self, events: CallEvents, asterisk: str) -> None:
        self._events = events
        self._asterisk = asterisk

    def call_started(self, call: CallInfo) -> None:
        self._events.life_cycle("call.started", self._asterisk, call)

    def call_answered(self, call: CallInfo) -> None:
        self._events.life_cycle("call.answered", self._asterisk, call)

    def call_ended(self, call: CallInfo, billsec: int, cause: int | None) -> None:
        self._events.life_cycle("call.ended", self._asterisk, call, billsec, cause)


__all__ = ["DECISION_KINDS", "CallEventListener", "CallEvents", "EventSink"]

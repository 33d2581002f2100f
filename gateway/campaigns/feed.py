"""One Asterisk's AMI events and channel-table notices, turned into dialer notices.

Registered after the channel table (in wiring, `ChannelTable.attach` runs first), so when
an event reaches `on_event` the table already reflects it; every method here is
synchronous and only updates the call book and queues notices, which keeps them in event
order (see calls.py).

How a dialer call's fate is read:
- answered by a person = it joined the agent queue (QueueCallerJoin with its Linkedid);
  for a preview call, the agent channel's Dial to the lead ended with ANSWER;
- its channel table call ended: reached a person -> the runner's call_ended; answered but
  never queued -> answering machine; never answered -> busy / no answer / failed from the
  dial statuses and cause (outcomes.py);
- OriginateResponse Failure before any channel existed -> failed at once.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from ami import AmiClient, CallInfo, ChannelTable, Message
from dialer.leads import Outcome
from gateway.campaigns.calls import CallBook, DialerCall, QueueActivity
from gateway.campaigns.outcomes import failure_outcome

log = structlog.get_logger(__name__)


class LinkFeed:
    def __init__(self, name: str, client: AmiClient, channels: ChannelTable,
                 book: CallBook) -> None:
        self.name = name
        self._client = client
        self._channels = channels
        self._book = book
        self._detach: list[Callable[[], None]] = []

    def attach(self) -> None:
        self._detach.append(self._channels.subscribe(self))
        self._detach.append(self._client.subscribe("*", self.on_event))

    def detach(self) -> None:
        for off in self._detach:
            off()
        self._detach.clear()

    def _mine(self, call_id: str) -> DialerCall | None:
        call = self._book.get(call_id) if call_id else None
        return call if call is not None and call.asterisk == self.name else None

    # -- channel table listener ----------------------------------------------------------

    def call_started(self, call: CallInfo) -> None:
        rec = self._mine(call.linkedid)
        if rec is not None:
            rec.seen = True

    def call_answered(self, call: CallInfo) -> None:
        rec = self._mine(call.linkedid)
        if rec is not None:
            rec.seen = rec.answered = True

    def call_ended(self, call: CallInfo, billsec: int, cause: int | None) -> None:
        rec = self._mine(call.linkedid)
        if rec is None:
            return
        outcome: Outcome | None
        if rec.preview_agent:
            statuses = (rec.lead_dial_status,) if rec.lead_dial_status else call.dial_statuses
            outcome = None if rec.lead_answered else failure_outcome(
                statuses, call.hangup_cause, rec.originate_reason)
        elif rec.reached_queue:
            outcome = None
        elif rec.answered:
            # Picked up, then gone before the queue: the answering-machine check dropped it
            # (or the person hung up during it).
            outcome = Outcome.MACHINE
        else:
            outcome = failure_outcome(call.dial_statuses, call.hangup_cause,
                                      rec.originate_reason)
        self._book.finish(rec, outcome, why=f"call_ended cause={cause}")

    # -- AMI events ----------------------------------------------------------------------

    def on_event(self, msg: Message) -> None:
        name = msg.name.lower()
        if name == "originateresponse":
            self._originate_response(msg)
        elif name == "dialend":
            self._dial_end(msg)
        elif name.startswith(("queue", "agent")):
            queue = msg.get("Queue") or ""
            if not queue:
                return
            if name == "queuecallerjoin":
                rec = self._mine(msg.get("Linkedid") or msg.get("Uniqueid") or "")
                if rec is not None and not rec.reached_queue:
                    rec.seen = rec.answered = rec.reached_queue = True
                    self._book.answered(rec)
            self._book.notices.put_nowait(QueueActivity(msg, queue))

    def _originate_response(self, msg: Message) -> None:
        action_id = msg.action_id or ""
        rec = self._mine(msg.get("Uniqueid") or "")
        if rec is None and action_id:
            rec = self._book.by_action(action_id)
        ok = (msg.get("Response") or "").lower() == "success"
        try:
            reason = int(msg.get("Reason") or 0)
        except ValueError:
            reason = 0
        if rec is None:
            if not ok and action_id:
                self._book.originate_failed_unmatched(action_id, reason)
            return
        if ok:
            rec.originate_reason = reason
            return
        if not rec.seen and self._channels.call(rec.call_id) is not None:
            rec.seen = True
        # With channels up, the call's end gives the outcome; without, this is final.
        (log.debug if rec.seen else log.info)(
            "dialer_originate_failed", call_id=rec.call_id, reason=reason, asterisk=self.name,
            channels_seen=rec.seen)
        self._book.originate_failed(rec, reason)

    def _dial_end(self, msg: Message) -> None:
        # Only a preview call's own channel (the agent's) dials the lead.
        rec = self._mine(msg.get("Uniqueid") or "")
        if rec is None or not rec.preview_agent:
            return
        status = (msg.get("DialStatus") or "").upper()
        rec.lead_dial_status = status
        if status == "ANSWER" and not rec.lead_answered:
            rec.lead_answered = True
            self._book.answered(rec)

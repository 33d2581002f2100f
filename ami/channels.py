"""Live channel table built from AMI events, channels grouped into calls by Linkedid.

What "answered" means here (checked against the b1, c1, c3, d1 and h2/h3 recordings):
a call is answered when one of its *dialled* channels reaches Up — a channel that was
the destination of a DialBegin, which includes the channel an Originate dials — or when
a DialEnd reports `DialStatus: ANSWER`, whichever is seen first.

Why not "the first channel that reaches Up": a dialplan may Answer() the caller for an
IVR or prompt long before anybody picks up at the far end, and billing must not start
then. For Local channel pairs (every Originate in the recordings) the dialled half is
`;1`; it goes Up only when its `;2` half is answered, which in `gw-out` happens when the
callee answers (b1: sim-callee `;2` Up, then sim-callee `;1` Up — dialled — then the
Originate's gw-out `;1`). Busy (c3: sim-callee `;2` goes to state 7 Busy) and no answer
(c1: Ringing, state 5) never reach Up on a dialled channel. One caveat: if the dialplan
behind an originated Local channel answers its `;2` half before dialling, the call counts
as answered at that moment — exactly when Asterisk itself reports the Originate as
answered (OriginateResponse Reason 4).

A call ends when the last channel of its Linkedid is hung up. Its cause is the first
hang-up cause other than 0 (Unknown) and 16 (Normal Clearing) among its channels, else
16 if any channel had it, else 0; None when every channel vanished unseen (a resync after
a disconnect). In the recordings: b1 and d1 give 16, c3 gives 17 (busy), c5 34, c2 19 —
but c1 (Dial timeout, no answer) only ever shows causes 0 and 16, so it reports 16 with
`dial_statuses` containing NOANSWER.

A channel stays in the call it was created in even if a later event shows another
Linkedid, so every call_started is matched by exactly one call_ended.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import structlog

from ami.frames import Message
from ami.listeners import SerialDispatcher

STATE_UP = 6
VARIABLE_PREFIX = "CALLGATE_"


def _no_variables() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class ChannelInfo:
    uniqueid: str
    linkedid: str
    name: str
    state: int
    state_desc: str
    caller_num: str = ""
    caller_name: str = ""
    connected_num: str = ""
    connected_name: str = ""
    context: str = ""
    exten: str = ""
    bridge_id: str = ""
    dialed: bool = False
    variables: Mapping[str, str] = field(default_factory=_no_variables, hash=False)
    created_at: float = 0.0
    up_at: float | None = None
    ended: bool = False
    hangup_cause: int | None = None
    hangup_cause_txt: str = ""

    @property
    def is_up(self) -> bool:
        return self.state == STATE_UP


@dataclass(frozen=True)
class CallInfo:
    linkedid: str
    channels: tuple[ChannelInfo, ...]
    started_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    dial_statuses: tuple[str, ...] = ()
    variables: Mapping[str, str] = field(default_factory=_no_variables, hash=False)
    hangup_cause: int | None = None
    hangup_cause_txt: str = ""
    ended_by: str = ""  # "hangup", or "resync" when its last channel vanished unseen

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def live_channels(self) -> tuple[ChannelInfo, ...]:
        return tuple(c for c in self.channels if not c.ended)


@dataclass(frozen=True)
class ResyncSummary:
    added_channels: tuple[str, ...] = ()
    vanished_channels: tuple[str, ...] = ()
    updated_channels: tuple[str, ...] = ()
    started_calls: tuple[str, ...] = ()
    answered_calls: tuple[str, ...] = ()
    ended_calls: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(
            self.added_channels
            or self.vanished_channels
            or self.started_calls
            or self.answered_calls
            or self.ended_calls
        )


class CallListener(Protocol):
    """Receives call lifecycle notifications; methods may be plain or async."""

    def call_started(self, call: CallInfo) -> Awaitable[None] | None: ...

    def call_answered(self, call: CallInfo) -> Awaitable[None] | None: ...

    def call_ended(
        self, call: CallInfo, billsec: int, cause: int | None
    ) -> Awaitable[None] | None: ...


class EventSource(Protocol):
    """What `attach` needs from an AmiClient."""

    def subscribe(self, name: str, callback: Callable[[Message], object]) -> Callable[[], None]: ...

    def on_resync(self, callback: Callable[[list[Message]], object]) -> Callable[[], None]: ...


class _Chan:
    def __init__(self, uniqueid: str, linkedid: str, created_at: float) -> None:
        self.uniqueid = uniqueid
        self.linkedid = linkedid
        self.name = ""
        self.state = 0
        self.state_desc = ""
        self.caller_num = ""
        self.caller_name = ""
        self.connected_num = ""
        self.connected_name = ""
        self.context = ""
        self.exten = ""
        self.bridge_id = ""
        self.dialed = False
        self.variables: dict[str, str] = {}
        self.created_at = created_at
        self.up_at: float | None = None
        self.ended = False
        self.hangup_cause: int | None = None
        self.hangup_cause_txt = ""

    def update(self, msg: Message) -> None:
        """Refresh the standard channel headers every channel event carries."""
        name = msg.get("Channel")
        if name:
            self.name = name
        state = _int(msg.get("ChannelState"))
        if state is not None:
            self.state = state
            self.state_desc = msg.get("ChannelStateDesc", self.state_desc) or ""
        for attr, key in (
            ("caller_num", "CallerIDNum"),
            ("caller_name", "CallerIDName"),
            ("connected_num", "ConnectedLineNum"),
            ("connected_name", "ConnectedLineName"),
            ("context", "Context"),
            ("exten", "Exten"),
        ):
            value = msg.get(key)
            if value is not None:
                setattr(self, attr, value)

    def snapshot(self) -> ChannelInfo:
        return ChannelInfo(
            uniqueid=self.uniqueid,
            linkedid=self.linkedid,
            name=self.name,
            state=self.state,
            state_desc=self.state_desc,
            caller_num=self.caller_num,
            caller_name=self.caller_name,
            connected_num=self.connected_num,
            connected_name=self.connected_name,
            context=self.context,
            exten=self.exten,
            bridge_id=self.bridge_id,
            dialed=self.dialed,
            variables=MappingProxyType(dict(self.variables)),
            created_at=self.created_at,
            up_at=self.up_at,
            ended=self.ended,
            hangup_cause=self.hangup_cause,
            hangup_cause_txt=self.hangup_cause_txt,
        )


class _Call:
    def __init__(self, linkedid: str, started_at: float) -> None:
        self.linkedid = linkedid
        self.started_at = started_at
        self.channels: dict[str, _Chan] = {}
        self.live: set[str] = set()
        self.answered_at: float | None = None
        self.answered_ts: float | None = None
        self.ended_at: float | None = None
        self.ended_ts: float | None = None
        self.dial_statuses: list[str] = []
        self.hangup_order: list[str] = []
        self.ended_by = ""

    def cause(self) -> tuple[int | None, str]:
        seen = [
            (c.hangup_cause, c.hangup_cause_txt)
            for c in (self.channels[u] for u in self.hangup_order)
            if c.hangup_cause is not None
        ]
        for cause, txt in seen:
            if cause not in (0, 16):
                return cause, txt
        for cause, txt in seen:
            if cause == 16:
                return cause, txt
        return seen[0] if seen else (None, "unknown")

    def billsec(self) -> int:
        if self.answered_at is None:
            return 0
        if self.answered_ts is not None and self.ended_ts is not None:
            span = self.ended_ts - self.answered_ts
        else:
            span = (self.ended_at or self.answered_at) - self.answered_at
        return max(0, math.floor(span))

    def snapshot(self) -> CallInfo:
        variables: dict[str, str] = {}
        for chan in self.channels.values():
            variables.update(chan.variables)
        cause, cause_txt = self.cause() if self.ended_at is not None else (None, "")
        return CallInfo(
            linkedid=self.linkedid,
            channels=tuple(c.snapshot() for c in self.channels.values()),
            started_at=self.started_at,
            answered_at=self.answered_at,
            ended_at=self.ended_at,
            dial_statuses=tuple(self.dial_statuses),
            variables=MappingProxyType(variables),
            hangup_cause=cause,
            hangup_cause_txt=cause_txt,
            ended_by=self.ended_by,
        )


class ChannelTable:
    """Channels and calls of one Asterisk, kept current from its AMI events.

    Feed it with `apply(msg)` for every event and `resync(items)` with the
    CoreShowChannel items after each (re)login; `attach(client)` wires both.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        logger: Any = None,
        remember_ended: int = 10_000,
    ) -> None:
        self._clock = clock
        self._log = logger if logger is not None else structlog.get_logger(__name__)
        self._channels: dict[str, _Chan] = {}
        self._calls: dict[str, _Call] = {}
        self._by_name: dict[str, str] = {}
        self._ended_uids: OrderedDict[str, None] = OrderedDict()
        self._remember = remember_ended
        self._listeners: dict[int, CallListener] = {}
        self._next_token = 0
        # AmiClient.logins when the last listing was applied: equal to the client's own
        # count, the table is exact for the current session (not still the old one's).
        self.synced_login = -1
        self._dispatch = SerialDispatcher(self._log, "ami_call_listener_failed")
        self._handlers: dict[str, Callable[[Message], None]] = {
            "newchannel": self._on_newchannel,
            "newstate": self._on_newstate,
            "newcallerid": self._on_channel_event,
            "newconnectedline": self._on_channel_event,
            "rename": self._on_channel_event,
            "dialbegin": self._on_dialbegin,
            "dialend": self._on_dialend,
            "bridgeenter": self._on_bridgeenter,
            "bridgeleave": self._on_bridgeleave,
            "varset": self._on_varset,
            "hangup": self._on_hangup,
        }

    # -- queries -----------------------------------------------------------------------

    def calls(self) -> list[CallInfo]:
        return [c.snapshot() for c in self._calls.values()]

    def call(self, linkedid: str) -> CallInfo | None:
        call = self._calls.get(linkedid)
        return call.snapshot() if call is not None else None

    def channel(self, uniqueid: str) -> ChannelInfo | None:
        chan = self._channels.get(uniqueid)
        return chan.snapshot() if chan is not None else None

    def channel_by_name(self, name: str) -> ChannelInfo | None:
        uid = self._by_name.get(name)
        return self.channel(uid) if uid is not None else None

    def __len__(self) -> int:
        return len(self._calls)

    # -- wiring ------------------------------------------------------------------------

    def subscribe(self, listener: CallListener) -> Callable[[], None]:
        self._next_token += 1
        token = self._next_token
        self._listeners[token] = listener

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    def attach(self, client: EventSource) -> Callable[[], None]:
        """Feed this table from an AmiClient's events and resyncs; returns a detach."""
        off_events = client.subscribe("*", self.apply)

        def resync_then_tell(items: list[Message]) -> None:
            self.resync(items)
            self.synced_login = getattr(client, "logins", 0)
            # After the call_ended of every vanished call, in each listener's order.
            for token, listener in list(self._listeners.items()):
                told = getattr(listener, "table_resynced", None)
                if told is not None:
                    self._dispatch.deliver(token, told)

        off_resync = client.on_resync(resync_then_tell)

        def detach() -> None:
            off_events()
            off_resync()

        return detach

    async def drain(self) -> None:
        """Wait until async listeners have processed every notification so far."""
        await self._dispatch.drain()

    async def close(self) -> None:
        await self._dispatch.close()

    # -- events ------------------------------------------------------------------------

    def apply(self, msg: Message) -> None:
        handler = self._handlers.get(msg.name.lower())
        if handler is None:
            return
        try:
            handler(msg)
        except Exception:
            self._log.exception(
                "ami_channel_event_failed", event=msg.name, uniqueid=msg.get("Uniqueid")
            )

    def _known(self, msg: Message) -> _Chan | None:
        uid = msg.get("Uniqueid")
        chan = self._channels.get(uid) if uid else None
        if chan is not None:
            old = chan.name
            chan.update(msg)
            if chan.name != old:
                self._by_name.pop(old, None)
                self._by_name[chan.name] = chan.uniqueid
            linkedid = msg.get("Linkedid")
            if linkedid and linkedid != chan.linkedid:
                self._log.debug(
                    "ami_linkedid_changed",
                    uniqueid=chan.uniqueid,
                    kept=chan.linkedid,
                    seen=linkedid,
                )
        return chan

    def _on_newchannel(self, msg: Message) -> None:
        uid = msg.get("Uniqueid")
        if not uid:
            self._log.warning("ami_newchannel_without_uniqueid", channel=msg.get("Channel"))
            return
        if uid in self._channels:
            self._known(msg)
            return
        self._ended_uids.pop(uid, None)
        chan, new_call = self._add_channel(uid, msg.get("Linkedid") or uid, msg, self._clock())
        if new_call is not None:
            self._started(new_call, chan, resync=False)

    def _add_channel(
        self, uid: str, linkedid: str, msg: Message, created_at: float
    ) -> tuple[_Chan, _Call | None]:
        """Add a channel to its call; returns the call too when this channel started it."""
        chan = _Chan(uid, linkedid, created_at)
        chan.update(msg)
        if chan.state == STATE_UP:
            chan.up_at = created_at
        self._channels[uid] = chan
        if chan.name:
            self._by_name[chan.name] = uid
        call = self._calls.get(linkedid)
        new_call = None
        if call is None:
            call = new_call = self._calls[linkedid] = _Call(linkedid, created_at)
        call.channels[uid] = chan
        call.live.add(uid)
        return chan, new_call

    def _started(self, call: _Call, chan: _Chan, *, resync: bool) -> None:
        self._log.info("call_started", linkedid=call.linkedid, channel=chan.name, resync=resync)
        self._emit("call_started", call.snapshot())

    def _on_channel_event(self, msg: Message) -> None:
        self._known(msg)

    def _on_newstate(self, msg: Message) -> None:
        chan = self._known(msg)
        if chan is None or chan.state != STATE_UP or chan.up_at is not None:
            return
        chan.up_at = self._clock()
        if chan.dialed:
            self._answer(chan.linkedid, msg)

    def _on_dialbegin(self, msg: Message) -> None:
        self._known(msg)
        dest = self._channels.get(msg.get("DestUniqueid") or "")
        if dest is not None:
            dest.dialed = True
            if dest.state == STATE_UP:
                self._answer(dest.linkedid, msg)

    def _on_dialend(self, msg: Message) -> None:
        self._known(msg)
        dest = self._channels.get(msg.get("DestUniqueid") or "")
        status = msg.get("DialStatus") or ""
        linkedid = (
            dest.linkedid if dest is not None else (msg.get("DestLinkedid") or msg.get("Linkedid"))
        )
        call = self._calls.get(linkedid or "")
        if call is None:
            return
        if status:
            call.dial_statuses.append(status)
        if status.upper() == "ANSWER":
            if dest is not None:
                dest.dialed = True
            self._answer(call.linkedid, msg)

    def _on_bridgeenter(self, msg: Message) -> None:
        chan = self._known(msg)
        if chan is not None:
            chan.bridge_id = msg.get("BridgeUniqueid") or ""

    def _on_bridgeleave(self, msg: Message) -> None:
        chan = self._known(msg)
        if chan is not None:
            chan.bridge_id = ""

    def _on_varset(self, msg: Message) -> None:
        name = (msg.get("Variable") or "").lstrip("_")  # __VAR is the inherited form
        if not name.upper().startswith(VARIABLE_PREFIX):
            return
        chan = self._known(msg)
        if chan is not None:
            chan.variables[name] = msg.get("Value") or ""

    def _on_hangup(self, msg: Message) -> None:
        chan = self._known(msg)
        if chan is None or chan.ended:
            return
        cause = _int(msg.get("Cause"))
        self._end_channel(chan, cause, msg.get("Cause-txt") or "", "hangup", _timestamp(msg))

    # -- state changes -----------------------------------------------------------------

    def _answer(self, linkedid: str, msg: Message | None, at: float | None = None) -> bool:
        call = self._calls.get(linkedid)
        if call is None or call.answered_at is not None or call.ended_at is not None:
            return False
        call.answered_at = self._clock() if at is None else at
        call.answered_ts = _timestamp(msg) if msg is not None else None
        self._log.info("call_answered", linkedid=linkedid)
        self._emit("call_answered", call.snapshot())
        return True

    def _end_channel(
        self, chan: _Chan, cause: int | None, cause_txt: str, how: str, ts: float | None
    ) -> str | None:
        """Mark a channel gone; ends and drops its call when it was the last. Returns the
        linkedid of an ended call."""
        chan.ended = True
        chan.hangup_cause = cause
        chan.hangup_cause_txt = cause_txt
        self._channels.pop(chan.uniqueid, None)
        if self._by_name.get(chan.name) == chan.uniqueid:
            del self._by_name[chan.name]
        self._ended_uids[chan.uniqueid] = None
        while len(self._ended_uids) > self._remember:
            self._ended_uids.popitem(last=False)
        call = self._calls.get(chan.linkedid)
        if call is None:
            return None
        call.live.discard(chan.uniqueid)
        call.hangup_order.append(chan.uniqueid)
        if call.live:
            return None
        call.ended_at = self._clock()
        call.ended_ts = ts
        call.ended_by = how
        del self._calls[call.linkedid]
        billsec = call.billsec()
        snap = call.snapshot()
        self._log.info(
            "call_ended",
            linkedid=call.linkedid,
            billsec=billsec,
            cause=snap.hangup_cause,
            cause_txt=snap.hangup_cause_txt,
            ended_by=how,
        )
        self._emit("call_ended", snap, billsec, snap.hangup_cause)
        return call.linkedid

    def _emit(self, method: str, *args: object) -> None:
        for token, listener in list(self._listeners.items()):
            self._dispatch.deliver(token, getattr(listener, method), *args)

    # -- resync ------------------------------------------------------------------------

    def resync(self, items: list[Message]) -> ResyncSummary:
        """Reconcile with a CoreShowChannels listing taken after a (re)login.

        Channels missing from the listing ended while we were away (cause unknown:
        None); listed channels we do not know are adopted, their calls started. A call
        adopted already Up is answered from the Duration of its dialled (`AppDial`)
        channel — an upper bound, since that includes the ringing time.
        """
        now = self._clock()
        listed: dict[str, Message] = {}
        for item in items:
            uid = item.get("Uniqueid")
            if uid:
                listed[uid] = item
        vanished: list[str] = []
        ended: list[str] = []
        for uid in [u for u in self._channels if u not in listed]:
            gone = self._channels[uid]
            vanished.append(uid)
            self._log.warning("ami_channel_vanished", uniqueid=uid, channel=gone.name)
            linkedid = self._end_channel(
                gone, None, "unknown (ended while disconnected)", "resync", None
            )
            if linkedid is not None:
                ended.append(linkedid)
        added: list[str] = []
        updated: list[str] = []
        started: list[str] = []
        touched: dict[str, float] = {}  # linkedid -> answer estimate
        for uid, item in listed.items():
            duration = _duration(item.get("Duration"))
            chan = self._channels.get(uid)
            if chan is None:
                if uid in self._ended_uids:
                    continue
                linkedid = item.get("Linkedid") or uid
                chan, new_call = self._add_channel(uid, linkedid, item, now - duration)
                chan.dialed = item.get("Application") == "AppDial"
                chan.bridge_id = item.get("BridgeId") or ""
                added.append(uid)
                if new_call is not None:
                    started.append(new_call.linkedid)
                    self._started(new_call, chan, resync=True)
            else:
                before = (chan.state, chan.bridge_id)
                chan.update(item)
                chan.bridge_id = item.get("BridgeId") or ""
                if item.get("Application") == "AppDial":
                    chan.dialed = True
                if (chan.state, chan.bridge_id) != before:
                    updated.append(uid)
            call_ = self._calls.get(chan.linkedid)
            if call_ is not None:
                call_.started_at = min(call_.started_at, chan.created_at)
            if chan.state == STATE_UP and chan.up_at is None:
                chan.up_at = now
            if chan.dialed and chan.state == STATE_UP:
                estimate = now - duration
                touched[chan.linkedid] = min(touched.get(chan.linkedid, estimate), estimate)
        answered = [
            linkedid for linkedid, at in touched.items() if self._answer(linkedid, None, at)
        ]
        summary = ResyncSummary(
            added_channels=tuple(added),
            vanished_channels=tuple(vanished),
            updated_channels=tuple(updated),
            started_calls=tuple(started),
            answered_calls=tuple(answered),
            ended_calls=tuple(ended),
        )
        self._log.info(
            "ami_channels_resynced",
            listed=len(listed),
            added=len(added),
            vanished=len(vanished),
            calls_started=len(started),
            calls_ended=len(ended),
        )
        return summary


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _timestamp(msg: Message | None) -> float | None:
    raw = msg.get("Timestamp") if msg is not None else None
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def _duration(value: str | None) -> float:
    """CoreShowChannel Duration `HH:MM:SS` (hours may exceed 24) to seconds."""
    if not value:
        return 0.0
    total = 0
    try:
        for part in value.strip().split(":"):
            total = total * 60 + int(part)
    except ValueError:
        return 0.0
    return float(total)

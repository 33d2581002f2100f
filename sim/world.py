"""The simulated Asterisk's state (channels, bridges, globals) and its event stream.

Everything observable goes through `World.emit`, in the order it happens, so every AMI
session (and any Python subscriber) sees the same sequence, just as with a real Asterisk.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from sim.ami_codec import Headers
from sim.astdb import AstDb
from sim.channels import DOWN, RING, Bridge, Channel, cause_text
from sim.clock import SimClock

log = structlog.get_logger(__name__)

Subscriber = Callable[[Headers], None]

PRIVILEGE = {
    "Newexten": "dialplan,all",
    "VarSet": "dialplan,all",
    "AGIExecStart": "agi,all",
    "AGIExecEnd": "agi,all",
    "Cdr": "cdr,all",
    "FullyBooted": "system,all",
    "PeerStatus": "system,all",
    "ContactStatus": "system,all",
    "Registry": "system,all",
    "SuccessfulAuth": "security,all",
    "ChallengeSent": "security,all",
    "ChallengeResponseFailed": "security,all",
    "InvalidPassword": "security,all",
    "RequestBadFormat": "security,all",
    "QueueMemberStatus": "agent,all",
    "QueueMemberPause": "agent,all",
    "QueueMemberAdded": "agent,all",
    "QueueMemberRemoved": "agent,all",
    "QueueCallerJoin": "agent,all",
    "QueueCallerLeave": "agent,all",
    "QueueCallerAbandon": "agent,all",
    "AgentCalled": "agent,all",
    "AgentConnect": "agent,all",
    "AgentComplete": "agent,all",
    "AgentRingNoAnswer": "agent,all",
    "UserEvent": "user,all",
}


@dataclass
class WorldConfig:
    """Knobs of the simulated server itself (not of the dialplan)."""

    ami_user: str = "gateway"
    ami_secret: str = "gateway"
    auth_fail_delay: float = 1.0  # real seconds before "Authentication failed"
    seed: int | None = None
    globals: dict[str, str] = field(default_factory=lambda: {"GLOBAL_TEST": "initial"})
    # Set to True to allow dangerous functions over AMI, like live_dangerously=yes.
    live_dangerously: bool = False
    system_name: str = ""
    first_uniqueid_seq: int = 1
    boot_uptime: int = 71


class World:
    """State of one simulated Asterisk.

    Not thread-safe: everything runs on one asyncio loop, which also makes the event
    order deterministic for a given sequence of inputs.
    """

    def __init__(self, config: WorldConfig | None = None, clock: SimClock | None = None) -> None:
        self.config = config or WorldConfig()
        self.clock = clock or SimClock()
        self.rng = random.Random(self.config.seed)
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.globals: dict[str, str] = dict(self.config.globals)
        self.astdb = AstDb()
        self._subscribers: list[Subscriber] = []
        self._uid_seq = self.config.first_uniqueid_seq
        self._local_seq = 0
        self._tech_seq: dict[str, int] = {}
        self.processed_calls = 0
        self.started_at = self.clock.now() - self.config.boot_uptime
        self.reloaded_at = self.started_at
        self.tasks: set[asyncio.Task[None]] = set()

    # ---- event stream -------------------------------------------------------------

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    def emit(
        self, event: str, headers: Iterable[tuple[str, str]], privilege: str | None = None
    ) -> None:
        frame: Headers = (
            ("Event", event),
            ("Privilege", privilege or PRIVILEGE.get(event, "call,all")),
            *headers,
        )
        for fn in list(self._subscribers):
            try:
                fn(frame)
            except Exception:  # a broken subscriber must not stop the world
                log.exception("sim_subscriber_failed", event_name=event)

    def ch_event(self, event: str, ch: Channel, extra: Iterable[tuple[str, str]] = ()) -> None:
        self.emit(event, [*ch.fields(), *extra])

    # ---- ids ----------------------------------------------------------------------

    def new_uniqueid(self) -> str:
        uid = f"{int(self.clock.now())}.{self._uid_seq}"
        self._uid_seq += 1
        return uid

    def next_local_seq(self) -> int:
        n = self._local_seq
        self._local_seq += 1
        return n

    def next_tech_seq(self, tech: str) -> int:
        n = self._tech_seq.get(tech, 0)
        self._tech_seq[tech] = n + 1
        return n

    def new_bridge_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # ---- channels -----------------------------------------------------------------

    def new_channel(
        self,
        name: str,
        *,
        tech: str,
        context: str,
        exten: str,
        state: int = DOWN,
        linkedid: str | None = None,
        uniqueid: str | None = None,
        device: str = "",
    ) -> Channel:
        uid = uniqueid or self.new_uniqueid()
        ch = Channel(
            name=name,
            uniqueid=uid,
            linkedid=linkedid or uid,
            tech=tech,
            context=context,
            exten=exten,
            state=state,
            created_at=self.clock.now(),
            device=device,
        )
        self.channels[name] = ch
        return ch

    def new_local_pair(
        self,
        exten: str,
        context: str,
        *,
        linkedid: str | None = None,
        uid1: str | None = None,
        uid2: str | None = None,
    ) -> tuple[Channel, Channel]:
        """Allocate both halves of a Local channel (no events: the caller emits Newchannel)."""
        base = f"Local/{exten}@{context}-{self.next_local_seq():08x}"
        device = f"Local/{exten}@{context}"
        one = self.new_channel(
            base + ";1",
            tech="Local",
            context=context,
            exten=exten,
            uniqueid=uid1,
            linkedid=linkedid,
            device=device,
        )
        two = self.new_channel(
            base + ";2",
            tech="Local",
            context=context,
            exten=exten,
            state=RING,
            uniqueid=uid2,
            linkedid=linkedid or one.uniqueid,
            device=device,
        )
        one.partner, two.partner = two, one
        return one, two

    def find_channel(self, name: str) -> Channel | None:
        ch = self.channels.get(name)
        if ch is not None and not ch.hungup:
            return ch
        return None

    def live_channels(self) -> list[Channel]:
        return [c for c in self.channels.values() if not c.hungup]

    def forget(self, ch: Channel) -> None:
        if self.channels.get(ch.name) is ch:
            del self.channels[ch.name]

    # ---- small event helpers ----------------------------------------------------------

    def newchannel(self, ch: Channel) -> None:
        self.ch_event("Newchannel", ch)

    def newexten(self, ch: Channel, priority: int, app: str, data: str) -> None:
        ch.priority = priority
        ch.app, ch.appdata = app, data
        if not ch.cdr_frozen:
            ch.cdr_last_app, ch.cdr_last_data = app, data
        self.ch_event(
            "Newexten", ch, [("Extension", ch.exten), ("Application", app), ("AppData", data)]
        )

    def varset(self, ch: Channel | None, name: str, value: str) -> None:
        if ch is None:
            self.globals[name] = value
            self.emit(
                "VarSet",
                [("Channel", "none"), ("Uniqueid", "none"), ("Variable", name), ("Value", value)],
            )
            return
        ch.variables[name.lstrip("_")] = value
        if name.startswith("_"):
            ch.variables[name] = value
        self.ch_event("VarSet", ch, [("Variable", name), ("Value", value)])

    def newstate(self, ch: Channel, state: int) -> None:
        ch.state = state
        if state == 6 and ch.answered_at is None:
            ch.answered_at = self.clock.now()
        self.ch_event("Newstate", ch)

    def newcallerid(self, ch: Channel) -> None:
        self.ch_event(
            "NewCallerid", ch, [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")]
        )

    def newconnectedline(self, ch: Channel) -> None:
        self.ch_event("NewConnectedLine", ch)

    def soft_hangup_request(self, ch: Channel, cause: int) -> None:
        self.ch_event("SoftHangupRequest", ch, [("Cause", str(cause))])

    def hangup_request(self, ch: Channel, cause: int) -> None:
        self.ch_event("HangupRequest", ch, [("Cause", str(cause))])

    def hangup(self, ch: Channel, cause: int) -> None:
        """The Hangup event: the channel is gone from the system after this."""
        ch.hangup_cause = cause
        ch.hungup = True
        if ch.timeout_handle is not None:
            ch.timeout_handle.cancel()
            ch.timeout_handle = None
        self.ch_event("Hangup", ch, [("Cause", str(cause)), ("Cause-txt", cause_text(cause))])
        self.forget(ch)

    def device_state(self, device: str, state: str) -> None:
        self.emit("DeviceStateChange", [("Device", device), ("State", state)])

    def local_bridge(self, one: Channel, two: Channel) -> None:
        self.emit(
            "LocalBridge",
            [
                *one.fields("LocalOne"),
                *two.fields("LocalTwo"),
                ("Context", two.context),
                ("Exten", two.exten),
                ("LocalOptimization", "Yes"),
            ],
        )

    def dial_begin(self, caller: Channel | None, dest: Channel, dialstring: str) -> None:
        head = caller.fields() if caller is not None else []
        self.emit("DialBegin", [*head, *dest.fields("Dest"), ("DialString", dialstring)])

    def dial_state(self, caller: Channel | None, dest: Channel, status: str) -> None:
        head = caller.fields() if caller is not None else []
        self.emit("DialState", [*head, *dest.fields("Dest"), ("DialStatus", status)])

    def dial_end(self, caller: Channel | None, dest: Channel, status: str) -> None:
        head = caller.fields() if caller is not None else []
        self.emit("DialEnd", [*head, *dest.fields("Dest"), ("DialStatus", status)])

    # ---- bridges ------------------------------------------------------------------

    def bridge_create(self) -> Bridge:
        br = Bridge(self.new_bridge_id())
        self.bridges[br.uniqueid] = br
        self.emit("BridgeCreate", br.fields())
        return br

    def bridge_enter(self, br: Bridge, ch: Channel) -> None:
        br.channels.append(ch)
        ch.bridge_id = br.uniqueid
        self.emit("BridgeEnter", [*br.fields(), *ch.fields()])

    def bridge_leave(self, br: Bridge, ch: Channel) -> None:
        if ch in br.channels:
            br.channels.remove(ch)
        ch.bridge_id = ""
        self.emit("BridgeLeave", [*br.fields(), *ch.fields()])

    def bridge_destroy(self, br: Bridge) -> None:
        self.bridges.pop(br.uniqueid, None)
        self.emit("BridgeDestroy", br.fields())

    # ---- CDR ----------------------------------------------------------------------

    def cdr(self, ch: Channel, disposition: str | None = None) -> None:
        end = self.clock.now()
        start = ch.created_at
        answer = ch.answered_at
        if disposition is None:
            disposition = "ANSWERED" if answer is not None else "NO ANSWER"
        src = ch.cdr_source if ch.cdr_source is not None else _cid_or_empty(ch.cid_num)
        name = _cid_or_empty(ch.cid_name)
        self.emit(
            "Cdr",
            [
                ("AccountCode", ch.accountcode),
                ("Source", src),
                ("Destination", ch.cdr_dest if ch.cdr_dest is not None else ch.exten),
                (
                    "DestinationContext",
                    ch.cdr_context if ch.cdr_context is not None else ch.context,
                ),
                ("CallerID", f'"{name}" <{src}>'),
                ("Channel", ch.name),
                ("DestinationChannel", ch.cdr_dest_channel),
                ("LastApplication", ch.cdr_last_app),
                ("LastData", ch.cdr_last_data),
                ("StartTime", _cdr_time(start)),
                ("AnswerTime", _cdr_time(answer) if answer is not None else ""),
                ("EndTime", _cdr_time(end)),
                ("Duration", str(int(end - start))),
                ("BillableSeconds", str(int(end - answer)) if answer is not None else "0"),
                ("Disposition", disposition),
                ("AMAFlags", "DOCUMENTATION"),
                ("UniqueID", ch.uniqueid),
                ("UserField", ""),
            ],
        )

    # ---- tasks --------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sim_task_failed", error=repr(task.exception()))

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass


def _cid_or_empty(v: str) -> str:
    return "" if v == "<unknown>" else v


def _cdr_time(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))

"""Agent state, built from Asterisk queue events.

    ready ──AgentCalled──> ringing ──AgentConnect──> talking ──AgentComplete──> wrap_up
      ^                       │ AgentRingNoAnswer / AgentDump                      │
      └───────────────────────┴─────────────── wrap-up time elapsed ───────────────┘
    paused <── QueueMemberPause Paused=1 / Paused=0 ──> ready (or wrap_up if still due)
    offline <── device state Invalid/Unavailable, QueueMemberRemoved

Field names are those of the Asterisk AMI events (app_queue): `Queue`, `Interface`,
`MemberName`, `Status` (numeric device state), `Paused`, `InCall`, `Wrapuptime`,
`Linkedid`, `Uniqueid`, `TalkTime`. An agent is keyed by `Interface`. Events for other
queues are ignored, so one board follows one campaign's queue.

Asterisk does not announce the end of wrapuptime: it just stops offering calls to the
member for that long. The board does the same arithmetic (`advance`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)


class AmiEvent(Protocol):
    """What the board needs from an AMI event; the AMI client's Message satisfies it."""

    @property
    def name(self) -> str: ...

    def get(self, key: str, default: str | None = None) -> str | None: ...


@dataclass(frozen=True)
class QueueEvent:
    """A plain AMI-shaped event, for the simulator and tests."""

    name: str
    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, name: str, **fields: object) -> QueueEvent:
        return cls(name, tuple((k, str(v)) for k, v in fields.items()))

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.fields:
            if k.lower() == key.lower():
                return v
        return default


class AgentState(StrEnum):
    READY = "ready"
    RINGING = "ringing"
    TALKING = "talking"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    OFFLINE = "offline"


# Numeric device states (AST_DEVICE_*) in QueueMemberStatus.Status.
_DEVICE_FREE = frozenset({0, 1})  # UNKNOWN is treated as available, as app_queue does
_DEVICE_BUSY = frozenset({2, 3, 7, 8})  # INUSE, BUSY, RINGINUSE, ONHOLD
_DEVICE_RINGING = 6
_DEVICE_GONE = frozenset({4, 5})  # INVALID, UNAVAILABLE
# A "not in use" device state this soon after AgentCalled is the stale pre-ring state.
_RING_SETTLE_S = 1.0

STAFFED = frozenset({AgentState.READY, AgentState.RINGING, AgentState.TALKING,
                     AgentState.WRAP_UP})
HANDLING = frozenset({AgentState.RINGING, AgentState.TALKING, AgentState.WRAP_UP})


@dataclass(frozen=True)
class Agent:
    interface: str
    name: str
    state: AgentState
    since: float
    paused: bool = False
    wrap_until: float = 0.0
    wrap_up_s: float = 0.0
    call: str = ""  # Linkedid of the call being handled
    calls_taken: int = 0


@dataclass(frozen=True)
class AgentNotice:
    """Something the dialer must act on, found in a queue event."""

    kind: str  # "connected" | "completed" | "caller_abandoned"
    call: str  # Linkedid (= Originate ChannelId = the dialer's call id)
    agent: str = ""
    uniqueid: str = ""


@dataclass(frozen=True)
class AgentCounts:
    ready: int = 0
    ringing: int = 0
    talking: int = 0
    wrap_up: int = 0
    paused: int = 0
    offline: int = 0

    @property
    def staffed(self) -> int:
        return self.ready + self.ringing + self.talking + self.wrap_up


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def _float(value: str | None, default: float = 0.0) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


class AgentBoard:
    """Agents of one queue and the seconds they have spent in each state."""

    def __init__(self, queue: str, default_wrap_up_s: float = 0.0) -> None:
        self.queue = queue
        self.default_wrap_up_s = default_wrap_up_s
        self._agents: dict[str, Agent] = {}
        self._seconds: dict[AgentState, float] = dict.fromkeys(AgentState, 0.0)
        self._changes = 0

    # -- reading -----------------------------------------------------------------

    def agents(self) -> tuple[Agent, ...]:
        return tuple(self._agents.values())

    def get(self, interface: str) -> Agent | None:
        return self._agents.get(interface)

    def counts(self) -> AgentCounts:
        n = dict.fromkeys(AgentState, 0)
        for a in self._agents.values():
            n[a.state] += 1
        return AgentCounts(ready=n[AgentState.READY], ringing=n[AgentState.RINGING],
                           talking=n[AgentState.TALKING], wrap_up=n[AgentState.WRAP_UP],
                           paused=n[AgentState.PAUSED], offline=n[AgentState.OFFLINE])

    def seconds_by_state(self, now: float) -> dict[AgentState, float]:
        """Agent-seconds spent in each state since the board started, up to now."""
        out = dict(self._seconds)
        for a in self._agents.values():
            out[a.state] += max(0.0, now - a.since)
        return out

    @property
    def changes(self) -> int:
        """Number of state changes applied; lets callers notice a change cheaply."""
        return self._changes

    # -- writing -----------------------------------------------------------------

    def advance(self, now: float) -> list[Agent]:
        """End wrap-ups that are due; returns the agents that became ready."""
        freed: list[Agent] = []
        for a in list(self._agents.values()):
            if a.state is AgentState.WRAP_UP and a.wrap_until <= now:
                nxt = AgentState.PAUSED if a.paused else AgentState.READY
                freed.append(self._set(a, nxt, a.wrap_until, call=""))
        return freed

    def apply(self, event: AmiEvent, now: float) -> AgentNotice | None:
        """Fold one AMI event into the board. Unknown or malformed events are ignored."""
        name = event.name
        queue = event.get("Queue")
        if queue is not None and queue != self.queue:
            return None
        handler = _HANDLERS.get(name)
        if handler is None:
            return None
        # QueueStatus' QueueMember items say Location/Name where events say Interface/MemberName.
        interface = event.get("Interface") or event.get("Location") or ""
        if not interface and name not in ("QueueCallerAbandon",):
            log.warning("agent_event_malformed", ami_event=name, queue=self.queue,
                        reason="no Interface")
            return None
        self.advance(now)
        return handler(self, event, interface, now)

    def load(self, agents: Iterable[Agent]) -> None:
        """Restore agents (e.g. from Redis after a restart) without counting their time."""
        for a in agents:
            self._agents[a.interface] = a

    # -- handlers ----------------------------------------------------------------

    def _set(self, agent: Agent, state: AgentState, now: float, **changes: object) -> Agent:
        self._seconds[agent.state] += max(0.0, now - agent.since)
        updated = replace(agent, state=state, since=now, **changes)  # type: ignore[arg-type]
        self._agents[agent.interface] = updated
        self._changes += 1
        return updated

    def _touch(self, interface: str, event: AmiEvent, now: float) -> Agent:
        agent = self._agents.get(interface)
        if agent is None:
            name = event.get("MemberName") or event.get("Name") or interface
            agent = Agent(interface=interface, name=name,
                          state=AgentState.OFFLINE, since=now,
                          wrap_up_s=self.default_wrap_up_s)
            self._agents[interface] = agent
        wrap = _float(event.get("Wrapuptime"), 0.0)
        if wrap > 0 and wrap != agent.wrap_up_s:
            agent = replace(agent, wrap_up_s=wrap)
            self._agents[interface] = agent
        return agent

    def _after_call(self, agent: Agent, now: float) -> Agent:
        if agent.wrap_up_s > 0:
            return self._set(agent, AgentState.WRAP_UP, now, wrap_until=now + agent.wrap_up_s,
                             call="", calls_taken=agent.calls_taken + 1)
        nxt = AgentState.PAUSED if agent.paused else AgentState.READY
        return self._set(agent, nxt, now, call="", calls_taken=agent.calls_taken + 1)

    def _idle_state(self, agent: Agent, now: float) -> AgentState:
        if agent.state is AgentState.WRAP_UP and agent.wrap_until > now:
            return AgentState.WRAP_UP
        return AgentState.PAUSED if agent.paused else AgentState.READY

    def _member_status(self, event: AmiEvent, interface: str, now: float) -> AgentNotice | None:
        agent = self._touch(interface, event, now)
        paused = _int(event.get("Paused"), 1 if agent.paused else 0) == 1
        status = _int(event.get("Status"), -1)
        in_call = _int(event.get("InCall"), 0) == 1
        agent = replace(agent, paused=paused)
        self._agents[interface] = agent
        if status in _DEVICE_GONE:
            self._set(agent, AgentState.OFFLINE, now, call="")
        elif status == _DEVICE_RINGING:
            if agent.state not in (AgentState.RINGING, AgentState.TALKING):
                self._set(agent, AgentState.RINGING, now)
        elif status in _DEVICE_BUSY or in_call:
            if agent.state is not AgentState.TALKING:
                self._set(agent, AgentState.TALKING, now)
        elif status in _DEVICE_FREE:
            if agent.state is AgentState.RINGING and now - agent.since < _RING_SETTLE_S:
                pass  # device state lags AgentCalled; AgentRingNoAnswer/Connect will follow
            elif agent.state is AgentState.TALKING:
                self._after_call(agent, now)
            else:
                target = self._idle_state(agent, now)
                if target is not agent.state:
                    self._set(agent, target, now)
        elif agent.state is AgentState.OFFLINE:
            self._set(agent, self._idle_state(agent, now), now)
        return None

    def _member_pause(self, event: AmiEvent, interface: str, now: float) -> AgentNotice | None:
        agent = self._touch(interface, event, now)
        paused = _int(event.get("Paused"), 0) == 1
        agent = replace(agent, paused=paused)
        self._agents[interface] = agent
        if agent.state in (AgentState.READY, AgentState.PAUSED, AgentState.WRAP_UP):
            target = self._idle_state(agent, now)
            if target is not agent.state:
                self._set(agent, target, now)
        return None

    def _member_removed(self, event: AmiEvent, interface: str, now: float) -> AgentNotice | None:
        agent = self._agents.pop(interface, None)
        if agent is not None:
            self._seconds[agent.state] += max(0.0, now - agent.since)
            self._changes += 1
        return None

    def _agent_called(self, event: AmiEvent, interface: str, now: float) -> AgentNotice | None:
        agent = self._touch(interface, event, now)
        self._set(agent, AgentState.RINGING, now, call=_call_of(event))
        return None

    def _ring_no_answer(self, event: AmiEvent, interface: str, now: float) -> AgentNotice | None:
        agent = self._touch(interface, event, now)
        if agent.state is AgentState.RINGING:
            self._set(agent, self._idle_state(agent, now), now, call="")
        return None

    def _agent_connect(self, event: AmiEvent, interface: str, now: float) -> AgentNotice | None:
        agent = self._touch(interface, event, now)
        call = _call_of(event)
        self._set(agent, AgentState.TALKING, now, call=call)
        return AgentNotice("connected", call, agent=interface,
                           uniqueid=event.get("Uniqueid") or "")

    def _agent_complete(self, event: AmiEvent, interface: str, now: float) -> AgentNotice | None:
        agent = self._touch(interface, event, now)
        call = _call_of(event) or agent.call
        if agent.state in (AgentState.TALKING, AgentState.RINGING):
            self._after_call(agent, now)
        return AgentNotice("completed", call, agent=interface,
                           uniqueid=event.get("Uniqueid") or "")

    def _caller_abandon(self, event: AmiEvent, interface: str, now: float) -> AgentNotice | None:
        call = _call_of(event)
        if not call:
            return None
        return AgentNotice("caller_abandoned", call, uniqueid=event.get("Uniqueid") or "")


def _call_of(event: AmiEvent) -> str:
    return event.get("Linkedid") or event.get("Uniqueid") or ""


_HANDLERS = {
    "QueueMemberStatus": AgentBoard._member_status,
    "QueueMemberAdded": AgentBoard._member_status,
    "QueueMember": AgentBoard._member_status,  # QueueStatus list item, for start-up sync
    "QueueMemberPause": AgentBoard._member_pause,
    "QueueMemberRemoved": AgentBoard._member_removed,
    "AgentCalled": AgentBoard._agent_called,
    "AgentRingNoAnswer": AgentBoard._ring_no_answer,
    "AgentDump": AgentBoard._ring_no_answer,
    "AgentConnect": AgentBoard._agent_connect,
    "AgentComplete": AgentBoard._agent_complete,
    "QueueCallerAbandon": AgentBoard._caller_abandon,
}

"""Call queues with agents (app_queue as seen on AMI): members, pause, ring, talk, wrap-up.

A call gets into a queue when an originated `;1` leg is answered and its Originate named a
queue context: `Context: <queue context>`, `Exten: <queue name>` (how a progressive dialer
hands an answered lead to an agent). Events: QueueCallerJoin/Leave/Abandon, AgentCalled,
AgentRingNoAnswer, AgentConnect, AgentComplete, QueueMemberStatus, QueueMemberPause;
QueueStatus / QueueSummary answer from this state.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sim.channels import DOWN, RINGING, UP, Bridge, Channel
from sim.dialplan import Dialplan, GatewayCall
from sim.farend import Dist, Step
from sim.world import World

NOT_INUSE, INUSE, RING_STATUS = 1, 2, 6


@dataclass
class Member:
    queue: str
    interface: str
    name: str
    ring: Dist = field(default_factory=lambda: Dist.fixed(2.0))
    talk: Dist = field(default_factory=lambda: Dist.exponential(60.0))
    answer_probability: float = 1.0
    penalty: int = 0
    paused: bool = False
    paused_reason: str = ""
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = 0
    in_call: bool = False
    ringing: bool = False
    wrapup_until: float = 0.0

    @property
    def status(self) -> int:
        if self.ringing:
            return RING_STATUS
        return INUSE if self.in_call else NOT_INUSE

    def fields(self, wrapup: int) -> list[tuple[str, str]]:
        return [
            ("Queue", self.queue),
            ("MemberName", self.name),
            ("Interface", self.interface),
            ("StateInterface", self.interface),
            ("Membership", "static"),
            ("Penalty", str(self.penalty)),
            ("CallsTaken", str(self.calls_taken)),
            ("LastCall", str(self.last_call)),
            ("LastPause", str(self.last_pause)),
            ("LoginTime", str(self.login_time)),
            ("InCall", "1" if self.in_call else "0"),
            ("Status", str(self.status)),
            ("Paused", "1" if self.paused else "0"),
            ("PausedReason", self.paused_reason),
            ("Ringinuse", "0"),
            ("Wrapuptime", str(wrapup)),
        ]


@dataclass
class Waiter:
    channel: Channel
    joined: float
    original_position: int


@dataclass
class CallQueue:
    name: str
    strategy: str = "rrmemory"
    wrapup: int = 0
    max_wait: float = 300.0
    ring_timeout: float = 15.0
    members: list[Member] = field(default_factory=list)
    waiting: list[Waiter] = field(default_factory=list)
    completed: int = 0
    abandoned: int = 0
    hold_total: float = 0.0
    talk_total: float = 0.0
    next_index: int = 0


class Queues:
    def __init__(self, world: World, dialplan: Dialplan, context: str = "callgate-queue") -> None:
        self.world = world
        self.dialplan = dialplan
        self.context = context
        self.queues: dict[str, CallQueue] = {}
        self._changed = asyncio.Event()
        dialplan.caller_programs[context] = self._caller_program
        dialplan.on_answered.append(self._on_answered)

    # ---- configuration ----------------------------------------------------------------

    def add_queue(
        self,
        name: str,
        *,
        strategy: str = "rrmemory",
        wrapup: int = 0,
        max_wait: float = 300.0,
        ring_timeout: float = 15.0,
    ) -> CallQueue:
        q = CallQueue(name, strategy, wrapup, max_wait, ring_timeout)
        self.queues[name] = q
        return q

    def add_member(
        self,
        queue: str,
        interface: str,
        *,
        name: str | None = None,
        paused: bool = False,
        ring: Dist | None = None,
        talk: Dist | None = None,
        answer_probability: float = 1.0,
    ) -> Member:
        q = self._queue(queue)
        m = Member(
            queue=queue,
            interface=interface,
            name=name or interface,
            ring=ring or Dist.fixed(2.0),
            talk=talk or Dist.exponential(60.0),
            answer_probability=answer_probability,
            paused=paused,
            login_time=int(self.world.clock.now()),
        )
        q.members.append(m)
        self.world.emit("QueueMemberAdded", m.fields(q.wrapup))
        return m

    def _queue(self, name: str) -> CallQueue:
        q = self.queues.get(name)
        if q is None:
            raise KeyError(f"no queue {name!r}; known: {sorted(self.queues)}")
        return q

    def set_paused(
        self, interface: str, paused: bool, *, queue: str | None = None, reason: str = ""
    ) -> bool:
        found = False
        for q in self.queues.values():
            if queue and q.name != queue:
                continue
            for m in q.members:
                if m.interface != interface:
                    continue
                found = True
                m.paused = paused
                m.paused_reason = reason if paused else ""
                m.last_pause = int(self.world.clock.now()) if paused else m.last_pause
                self.world.emit("QueueMemberPause", m.fields(q.wrapup))
        self._changed.set()
        return found

    # ---- list actions ---------------------------------------------------------------------

    def status_items(
        self, queue: str | None, member: str | None
    ) -> list[tuple[str, list[tuple[str, str]]]]:
        now = self.world.clock.now()
        out: list[tuple[str, list[tuple[str, str]]]] = []
        for q in self.queues.values():
            if queue and q.name != queue:
                continue
            done = max(q.completed, 1)
            out.append(
                (
                    "QueueParams",
                    [
                        ("Queue", q.name),
                        ("Max", "0"),
                        ("Strategy", q.strategy),
                        ("Calls", str(len(q.waiting))),
                        ("Holdtime", str(int(q.hold_total / done))),
                        ("TalkTime", str(int(q.talk_total / done))),
                        ("Completed", str(q.completed)),
                        ("Abandoned", str(q.abandoned)),
                        ("ServiceLevel", "0"),
                        ("ServicelevelPerf", "0.0"),
                        ("ServicelevelPerf2", "0.0"),
                        ("Weight", "0"),
                    ],
                )
            )
            for m in q.members:
                if member and member not in (m.interface, m.name):
                    continue
                out.append(
                    (
                        "QueueMember",
                        [
                            ("Queue", q.name),
                            ("Name", m.name),
                            ("Location", m.interface),
                            ("StateInterface", m.interface),
                            ("Membership", "static"),
                            ("Penalty", str(m.penalty)),
                            ("CallsTaken", str(m.calls_taken)),
                            ("LastCall", str(m.last_call)),
                            ("LastPause", str(m.last_pause)),
                            ("LoginTime", str(m.login_time)),
                            ("InCall", "1" if m.in_call else "0"),
                            ("Status", str(m.status)),
                            ("Paused", "1" if m.paused else "0"),
                            ("PausedReason", m.paused_reason),
                            ("Wrapuptime", str(q.wrapup)),
                        ],
                    )
                )
            for pos, wt in enumerate(q.waiting, 1):
                ch = wt.channel
                out.append(
                    (
                        "QueueEntry",
                        [
                            ("Queue", q.name),
                            ("Position", str(pos)),
                            ("Channel", ch.name),
                            ("Uniqueid", ch.uniqueid),
                            ("CallerIDNum", ch.cid_num),
                            ("CallerIDName", ch.cid_name),
                            ("ConnectedLineNum", ch.conn_num),
                            ("ConnectedLineName", ch.conn_name),
                            ("Wait", str(int(now - wt.joined))),
                            ("Priority", "0"),
                        ],
                    )
                )
        return out

    def summary_items(self, queue: str | None) -> list[list[tuple[str, str]]]:
        now = self.world.clock.now()
        out = []
        for q in self.queues.values():
            if queue and q.name != queue:
                continue
            done = max(q.completed, 1)
            available = [m for m in q.members if self._available(q, m, now)]
            out.append(
                [
                    ("Queue", q.name),
                    ("LoggedIn", str(len(q.members))),
                    ("Available", str(len(available))),
                    ("Callers", str(len(q.waiting))),
                    ("HoldTime", str(int(q.hold_total / done))),
                    ("TalkTime", str(int(q.talk_total / done))),
                    (
                        "LongestHoldTime",
                        str(int(max((now - w.joined for w in q.waiting), default=0))),
                    ),
                ]
            )
        return out

    # ---- calls --------------------------------------------------------------------------------

    def _caller_program(self, call: GatewayCall, g1: Channel) -> list[Step]:
        return [("Answer", ""), ("Queue", g1.exten)]

    def _on_answered(self, call: GatewayCall) -> None:
        g1 = call.g1
        if g1 is None or g1.context != self.context:
            return
        q = self.queues.get(g1.exten)
        if q is None:
            return
        session = QueueSession(self, q, call, g1)
        self.world.spawn(session.run())

    def _available(self, q: CallQueue, m: Member, now: float) -> bool:
        return not (m.paused or m.in_call or m.ringing or now < m.wrapup_until)

    def pick(self, q: CallQueue, tried: set[str]) -> Member | None:
        now = self.world.clock.now()
        n = len(q.members)
        for i in range(n):
            idx = (q.next_index + i) % n if q.strategy == "rrmemory" else i
            m = q.members[idx]
            if m.interface in tried or not self._available(q, m, now):
                continue
            q.next_index = (idx + 1) % n
            return m
        return None

    def member_status(self, q: CallQueue, m: Member) -> None:
        self.world.emit("QueueMemberStatus", m.fields(q.wrapup))
        self._changed.set()

    async def changed(self, timeout: float) -> None:
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass


class QueueSession:
    """One caller in one queue, from join to agent hang-up or abandon."""

    def __init__(self, queues: Queues, q: CallQueue, call: GatewayCall, g1: Channel) -> None:
        self.queues = queues
        self.w = queues.world
        self.q = q
        self.call = call
        self.g1 = g1
        self.agent: Channel | None = None
        self.member: Member | None = None
        self.bridge: Bridge | None = None
        self.caller_gone = asyncio.Event()
        self.connected_at = 0.0
        queues.dialplan.hangup_hooks.setdefault(g1, []).append(self._caller_hanging_up)

    def _qfields(self) -> list[tuple[str, str]]:
        return [("Queue", self.q.name)]

    async def run(self) -> None:
        w, q, g1 = self.w, self.q, self.g1
        joined = w.clock.now()
        pos = len(q.waiting) + 1
        waiter = Waiter(g1, joined, pos)
        q.waiting.append(waiter)
        w.ch_event(
            "QueueCallerJoin",
            g1,
            [("Queue", q.name), ("Position", str(pos)), ("Count", str(len(q.waiting)))],
        )
        tried: set[str] = set()
        deadline = joined + q.max_wait
        while not self.caller_gone.is_set():
            if w.clock.now() >= deadline:
                self._leave(waiter)
                self._unhook()
                self.queues.dialplan.request_hangup(g1, 16)
                return
            m = self.queues.pick(q, tried)
            if m is None:
                tried.clear()
                await self.queues.changed(w.clock.real_seconds(0.5))
                continue
            if await self._ring(m, waiter):
                return
            tried.add(m.interface)
        self._unhook()

    async def _ring(self, m: Member, waiter: Waiter) -> bool:
        """Ring one member; True when this session is over (connected and finished)."""
        w, q, g1 = self.w, self.q, self.g1
        m.ringing = True
        self.queues.member_status(q, m)
        tech = m.interface.split("/", 1)[-1]
        agent = w.new_channel(
            f"{m.interface}-{w.next_tech_seq('PJSIP'):08x}",
            tech=m.interface.split("/")[0],
            context="from-internal",
            exten="s",
            state=DOWN,
            linkedid=g1.linkedid,
            device=m.interface,
        )
        agent.cid_num, agent.cid_name = tech, m.name
        agent.conn_num, agent.conn_name = g1.cid_num, g1.cid_name
        self.agent = agent
        w.newchannel(agent)
        w.emit("AgentCalled", [*g1.fields(), *agent.fields("Dest"), *self._member(m)])
        w.newstate(agent, RINGING)
        ring = m.ring.sample(w.rng)
        answers = w.rng.random() < m.answer_probability
        wait_for = ring if answers else q.ring_timeout
        if await self._sleep(wait_for):
            m.ringing = False
            w.hangup(agent, 0)
            self.agent = None
            self.queues.member_status(q, m)
            return True
        m.ringing = False
        if not answers:
            w.emit(
                "AgentRingNoAnswer",
                [
                    *g1.fields(),
                    *agent.fields("Dest"),
                    *self._member(m),
                    ("RingTime", str(int(wait_for))),
                ],
            )
            w.hangup(agent, 19)
            self.agent = None
            self.queues.member_status(q, m)
            return False
        w.newstate(agent, UP)
        self._leave(waiter)
        hold = w.clock.now() - waiter.joined
        w.emit(
            "AgentConnect",
            [
                *g1.fields(),
                *agent.fields("Dest"),
                *self._member(m),
                ("RingTime", str(int(ring))),
                ("HoldTime", str(int(hold))),
            ],
        )
        m.in_call = True
        self.member = m
        self.queues.member_status(q, m)
        br = w.bridge_create()
        self.bridge = br
        w.bridge_enter(br, g1)
        w.bridge_enter(br, agent)
        self.connected_at = w.clock.now()
        q.hold_total += hold
        talk = m.talk.sample(w.rng)
        if not await self._sleep(talk):
            # the agent hangs up: their side goes first, then the caller leg is released
            self._end("agent", hold)
            self._unhook()
            self.queues.dialplan.request_hangup(g1, 16)
        return True

    def _member(self, m: Member) -> list[tuple[str, str]]:
        return [("Queue", self.q.name), ("MemberName", m.name), ("Interface", m.interface)]

    async def _sleep(self, secs: float) -> bool:
        """True if the caller went away meanwhile."""
        try:
            await asyncio.wait_for(self.caller_gone.wait(), self.w.clock.real_seconds(secs))
            return True
        except TimeoutError:
            return self.caller_gone.is_set()

    def _leave(self, waiter: Waiter) -> None:
        q = self.q
        if waiter in q.waiting:
            pos = q.waiting.index(waiter) + 1
            q.waiting.remove(waiter)
            self.w.ch_event(
                "QueueCallerLeave",
                self.g1,
                [("Queue", q.name), ("Count", str(len(q.waiting))), ("Position", str(pos))],
            )

    def _caller_hanging_up(self, ch: Channel, cause: int) -> None:
        """The caller leg is about to hang up (far end left, AMI Hangup...)."""
        if self.caller_gone.is_set():
            return
        self.caller_gone.set()
        q, w = self.q, self.w
        for waiter in list(q.waiting):
            if waiter.channel is ch:
                pos = q.waiting.index(waiter) + 1
                q.abandoned += 1
                w.ch_event(
                    "QueueCallerAbandon",
                    ch,
                    [
                        ("Queue", q.name),
                        ("Position", str(pos)),
                        ("OriginalPosition", str(waiter.original_position)),
                        ("HoldTime", str(int(w.clock.now() - waiter.joined))),
                    ],
                )
                self._leave(waiter)
        if self.bridge is not None:
            self._end("caller", 0.0)

    def _end(self, who: str, hold: float) -> None:
        w, q, g1, agent, br, m = self.w, self.q, self.g1, self.agent, self.bridge, self.member
        if br is None or agent is None or m is None:
            return
        talk = w.clock.now() - self.connected_at
        w.bridge_leave(br, agent if who == "agent" else g1)
        w.bridge_leave(br, g1 if who == "agent" else agent)
        w.bridge_destroy(br)
        self.bridge = None
        w.emit(
            "AgentComplete",
            [
                *g1.fields(),
                *agent.fields("Dest"),
                *self._member(m),
                ("HoldTime", str(int(hold))),
                ("TalkTime", str(int(talk))),
                ("Reason", who),
            ],
        )
        if who == "agent":
            w.soft_hangup_request(agent, 16)
        w.hangup(agent, 16)
        self.agent = None
        q.completed += 1
        q.talk_total += talk
        m.in_call = False
        m.calls_taken += 1
        m.last_call = int(w.clock.now())
        m.wrapup_until = w.clock.now() + q.wrapup
        self.queues.member_status(q, m)

    def _unhook(self) -> None:
        hooks = self.queues.dialplan.hangup_hooks.get(self.g1)
        if hooks and self._caller_hanging_up in hooks:
            hooks.remove(self._caller_hanging_up)

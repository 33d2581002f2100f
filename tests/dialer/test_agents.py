"""Agent states from Asterisk queue-member events."""

from __future__ import annotations

from ami.frames import Message
from dialer.agents import AgentBoard, AgentState, QueueEvent

Q = "sales"
A = "PJSIP/6001"


def ev(name: str, **fields: object) -> QueueEvent:
    return QueueEvent.of(name, Queue=Q, Interface=A, MemberName="Alice", **fields)


def board_with_ready_agent(wrap: float = 10.0) -> AgentBoard:
    b = AgentBoard(Q, default_wrap_up_s=wrap)
    b.apply(ev("QueueMemberAdded", Status=1, Paused=0, InCall=0), 0.0)
    return b


def state(b: AgentBoard) -> AgentState:
    agent = b.get(A)
    assert agent is not None
    return agent.state


def test_full_call_cycle_ready_ringing_talking_wrap_up_ready() -> None:
    b = board_with_ready_agent(wrap=10.0)
    assert state(b) is AgentState.READY
    b.apply(ev("AgentCalled", Linkedid="call-1"), 1.0)
    assert state(b) is AgentState.RINGING
    notice = b.apply(ev("AgentConnect", Linkedid="call-1", HoldTime=0, RingTime=1), 2.0)
    assert state(b) is AgentState.TALKING
    assert notice is not None and (notice.kind, notice.call) == ("connected", "call-1")
    notice = b.apply(ev("AgentComplete", Linkedid="call-1", TalkTime=90, Reason="caller"),
                     92.0)
    assert notice is not None and notice.kind == "completed"
    assert state(b) is AgentState.WRAP_UP
    b.advance(101.9)
    assert state(b) is AgentState.WRAP_UP
    b.advance(102.0)
    assert state(b) is AgentState.READY
    secs = b.seconds_by_state(102.0)
    assert secs[AgentState.TALKING] == 90.0 and secs[AgentState.WRAP_UP] == 10.0


def test_device_state_not_in_use_after_a_call_starts_wrap_up_not_ready() -> None:
    # Asterisk reports the device free before (or instead of) AgentComplete.
    b = board_with_ready_agent(wrap=10.0)
    b.apply(ev("QueueMemberStatus", Status=2, InCall=1, Paused=0), 5.0)
    assert state(b) is AgentState.TALKING
    b.apply(ev("QueueMemberStatus", Status=1, InCall=0, Paused=0), 50.0)
    assert state(b) is AgentState.WRAP_UP
    b.apply(ev("AgentComplete", Linkedid="x", TalkTime=45), 50.1)  # no second wrap-up
    b.advance(60.0)
    assert state(b) is AgentState.READY


def test_member_wrapuptime_from_the_event_overrides_the_default() -> None:
    b = AgentBoard(Q, default_wrap_up_s=10.0)
    b.apply(ev("QueueMemberAdded", Status=1, Paused=0, Wrapuptime=30), 0.0)
    b.apply(ev("AgentConnect", Linkedid="c"), 1.0)
    b.apply(ev("AgentComplete", Linkedid="c"), 11.0)
    b.advance(40.9)
    assert state(b) is AgentState.WRAP_UP
    b.advance(41.0)
    assert state(b) is AgentState.READY


def test_pause_and_unpause() -> None:
    b = board_with_ready_agent()
    b.apply(ev("QueueMemberPause", Paused=1, PausedReason="lunch"), 5.0)
    assert state(b) is AgentState.PAUSED
    b.apply(ev("QueueMemberPause", Paused=0), 65.0)
    assert state(b) is AgentState.READY


def test_paused_during_a_call_is_paused_after_it() -> None:
    b = board_with_ready_agent(wrap=0.0)
    b.apply(ev("AgentConnect", Linkedid="c"), 1.0)
    b.apply(ev("QueueMemberPause", Paused=1), 2.0)
    assert state(b) is AgentState.TALKING
    b.apply(ev("AgentComplete", Linkedid="c"), 30.0)
    assert state(b) is AgentState.PAUSED


def test_ring_no_answer_returns_the_agent_to_ready() -> None:
    b = board_with_ready_agent()
    b.apply(ev("AgentCalled", Linkedid="c"), 1.0)
    b.apply(ev("AgentRingNoAnswer", Linkedid="c", RingTime=15), 16.0)
    assert state(b) is AgentState.READY


def test_unavailable_device_and_removal_take_the_agent_offline() -> None:
    b = board_with_ready_agent()
    b.apply(ev("QueueMemberStatus", Status=5, Paused=0), 3.0)
    assert state(b) is AgentState.OFFLINE
    b.apply(ev("QueueMemberStatus", Status=1, Paused=0), 4.0)
    assert state(b) is AgentState.READY
    b.apply(ev("QueueMemberRemoved"), 5.0)
    assert b.get(A) is None
    assert b.counts().staffed == 0


def test_other_queues_and_malformed_events_are_ignored() -> None:
    b = board_with_ready_agent()
    b.apply(QueueEvent.of("AgentConnect", Queue="support", Interface=A, Linkedid="c"), 1.0)
    assert state(b) is AgentState.READY
    assert b.apply(QueueEvent.of("AgentConnect", Queue=Q), 1.0) is None  # no Interface
    b.apply(ev("QueueMemberStatus", Status="garbage", Paused="x"), 2.0)
    assert state(b) is AgentState.READY


def test_caller_abandon_is_reported_with_its_call() -> None:
    b = board_with_ready_agent()
    notice = b.apply(QueueEvent.of("QueueCallerAbandon", Queue=Q, Linkedid="call-9",
                                   Uniqueid="u9", Position=1, OriginalPosition=1,
                                   HoldTime=3), 1.0)
    assert notice is not None and (notice.kind, notice.call) == ("caller_abandoned", "call-9")


def test_the_ami_clients_message_type_is_accepted() -> None:
    b = AgentBoard(Q)
    b.apply(Message.of(("Event", "QueueMemberStatus"), ("Queue", Q), ("Interface", A),
                       ("MemberName", "Alice"), ("Status", "1"), ("Paused", "0")), 0.0)
    b.apply(Message.of(("Event", "AgentConnect"), ("Queue", Q), ("Interface", A),
                       ("Linkedid", "c1")), 1.0)
    assert state(b) is AgentState.TALKING

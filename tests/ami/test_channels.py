"""ChannelTable fed with the recorded event streams, at the recorded times."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from structlog.testing import capture_logs

from ami.channels import CallInfo, ChannelTable
from ami.frames import FrameParser, Message
from tests.ami.recordings import recording, rx_bytes, timeline


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder:
    log: list[tuple[object, ...]] = field(default_factory=list)
    ended: list[CallInfo] = field(default_factory=list)

    def call_started(self, call: CallInfo) -> None:
        self.log.append(("started", call.linkedid))

    def call_answered(self, call: CallInfo) -> None:
        self.log.append(("answered", call.linkedid))

    def call_ended(self, call: CallInfo, billsec: int, cause: int | None) -> None:
        self.log.append(("ended", call.linkedid, billsec, cause))
        self.ended.append(call)


def make_table() -> tuple[ChannelTable, FakeClock, Recorder]:
    clock = FakeClock()
    table = ChannelTable(clock=clock)
    recorder = Recorder()
    table.subscribe(recorder)
    return table, clock, recorder


def replay(
    prefix: str,
    table: ChannelTable,
    clock: FakeClock,
    *,
    until: str | None = None,
    rewrite: tuple[bytes, bytes] | None = None,
) -> list[Message]:
    """Apply a recording's events with the clock at each recv()'s recorded time.

    Stops before the first frame containing `until` when given."""
    parser = FrameParser()
    seen: list[Message] = []
    for chunk in timeline(recording(prefix, "timeline")):
        if chunk.direction != "RX":
            continue
        clock.now = 1000.0 + chunk.t
        data = chunk.data if rewrite is None else chunk.data.replace(*rewrite)
        for msg in parser.feed(data):
            if until is not None and until in msg.to_dict().values():
                return seen
            seen.append(msg)
            table.apply(msg)
    return seen


def cdr_billsec(events: list[Message], linkedid_channels: set[str]) -> int:
    """What Asterisk's own CDRs said the call's billable seconds were."""
    return max(
        (int(m.get("BillableSeconds") or 0) for m in events
         if m.name == "Cdr" and m.get("Channel") in linkedid_channels),
        default=0,
    )


@pytest.mark.parametrize(
    ("prefix", "answered", "cause", "cause_txt", "first_dial_status"),
    [
        ("b1", True, 16, "Normal Clearing", "ANSWER"),
        ("b2", True, 16, "Normal Clearing", "ANSWER"),
        ("c1", False, 16, "Normal Clearing", "NOANSWER"),  # c1 records no cause 19
        ("c2", False, 19, "User alerting, no answer", "CANCEL"),
        ("c3", False, 17, "User busy", "BUSY"),
        ("c4", False, 17, "User busy", "BUSY"),
        ("c5", False, 34, "Circuit/channel congestion", "CONGESTION"),
        ("c6", False, 0, "Unknown", "NOANSWER"),  # the AGI hung up
        ("d1", True, 16, "Normal Clearing", "ANSWER"),  # AMI Hangup action
        ("d2", True, 16, "Normal Clearing", "ANSWER"),  # AbsoluteTimeout
        ("f1", True, 16, "Normal Clearing", "ANSWER"),  # L() limit cut at 12 s
        ("h2", True, 16, "Normal Clearing", "ANSWER"),  # SIP phone to phone
        ("h3", True, 16, "Normal Clearing", "ANSWER"),  # Originate to a SIP phone
    ],
)
def test_recorded_call_lifecycle(
    prefix: str, answered: bool, cause: int, cause_txt: str, first_dial_status: str
) -> None:
    table, clock, rec = make_table()
    events = replay(prefix, table, clock)
    kinds = [entry[0] for entry in rec.log]
    assert kinds == (["started", "answered", "ended"] if answered else ["started", "ended"])
    assert len({entry[1] for entry in rec.log}) == 1  # one call, one Linkedid
    (call,) = rec.ended
    _, _, billsec, reported_cause = rec.log[-1]
    assert reported_cause == cause and call.hangup_cause == cause
    assert call.hangup_cause_txt == cause_txt
    assert call.answered is answered
    assert call.dial_statuses[0] == first_dial_status
    assert call.ended_by == "hangup" and call.live_channels == ()
    assert billsec == cdr_billsec(events, {c.name for c in call.channels})
    assert len(table) == 0 and table.calls() == []


def test_b1_details() -> None:
    table, clock, rec = make_table()
    events = replay("b1", table, clock)
    (call,) = rec.ended
    assert call.linkedid == "1795426445.4"
    names = [c.name for c in call.channels]
    assert names == [
        "Local/100@gw-out-00000002;1",
        "Local/100@gw-out-00000002;2",
        "Local/100@sim-callee-00000003;1",
        "Local/100@sim-callee-00000003;2",
    ]
    dialed = {c.name for c in call.channels if c.dialed}
    assert dialed == {"Local/100@gw-out-00000002;1", "Local/100@sim-callee-00000003;1"}
    assert all(c.hangup_cause == 16 for c in call.channels)
    # Answered when the dialled callee leg went Up, not at Originate time.
    up = next(
        m for m in events
        if m.name == "Newstate" and m.get("Channel") == "Local/100@sim-callee-00000003;1"
    )
    assert up.get("ChannelStateDesc") == "Up"
    assert call.answered_at is not None and call.answered_at - call.started_at > 0.9
    assert rec.log[-1][2] == 5  # 5 s of talk


def test_state_while_the_call_is_up() -> None:
    table, clock, _ = make_table()
    replay("d1", table, clock, until="hangup-mid")
    (call,) = table.calls()
    assert call.answered and call.ended_at is None
    callee = table.channel_by_name("Local/150@sim-callee-00000016;1")
    assert callee is not None and callee.is_up and callee.bridge_id
    assert callee.caller_num == "150"
    gw2 = table.channel_by_name("Local/150@gw-out-00000015;2")
    assert gw2 is not None and gw2.bridge_id == callee.bridge_id
    assert table.channel(gw2.uniqueid) == gw2
    assert table.call(call.linkedid) == call


def test_only_callgate_variables_are_kept() -> None:
    table, clock, rec = make_table()
    # Make the recorded GW_CALL_ID VarSets (plain and inherited `__` form) CALLGATE_ ones.
    replay("b1", table, clock, rewrite=(b"GW_CALL_ID", b"CALLGATE_LEASE"))
    (call,) = rec.ended
    assert dict(call.variables) == {"CALLGATE_LEASE": "call-b-0001"}
    callee = next(c for c in call.channels if c.name.endswith("sim-callee-00000003;1"))
    assert dict(callee.variables) == {"CALLGATE_LEASE": "call-b-0001"}  # from __CALLGATE_LEASE
    assert all("GW_SCENARIO" not in c.variables for c in call.channels)


def test_concurrent_calls_in_one_stream_are_kept_apart() -> None:
    """g3 has the bridged call plus a prompt-player Originate with its own Linkedid."""
    table, clock, rec = make_table()
    replay("g3", table, clock)
    started = [e[1] for e in rec.log if e[0] == "started"]
    ended = [e[1] for e in rec.log if e[0] == "ended"]
    assert len(started) == 2 and sorted(started) == sorted(ended)


# -- resync ---------------------------------------------------------------------------------


def a4_channel_items() -> list[Message]:
    messages = FrameParser().feed(rx_bytes(recording("a4")))
    return [m for m in messages if m.name == "CoreShowChannel" and m.action_id == "csc-2"]


def test_resync_ends_calls_whose_hangups_were_missed() -> None:
    table, clock, rec = make_table()
    replay("b1", table, clock, until="SoftHangupRequest")
    (live,) = table.calls()
    assert live.answered and len(live.live_channels) == 4
    clock.now += 30  # the AMI link was down; the hangups happened meanwhile
    with capture_logs() as logs:
        summary = table.resync([])
    assert summary.ended_calls == (live.linkedid,)
    assert sorted(summary.vanished_channels) == sorted(c.uniqueid for c in live.channels)
    assert summary.changed
    (call,) = rec.ended
    assert rec.log[-1][3] is None  # cause unknown, reported as such
    assert call.hangup_cause is None and call.ended_by == "resync"
    assert call.hangup_cause_txt == "unknown"
    assert all(c.hangup_cause is None for c in call.channels)
    assert rec.log[-1][2] >= 30  # billed up to when the loss was noticed
    assert sum(e["event"] == "ami_channel_vanished" for e in logs) == 4
    assert table.calls() == []


def test_resync_adopts_unknown_channels_from_core_show_channels() -> None:
    table, clock, rec = make_table()
    summary = table.resync(a4_channel_items())
    assert len(summary.added_channels) == 4
    assert summary.started_calls == ("1795426555.38",)
    assert summary.answered_calls == ("1795426555.38",)
    (call,) = table.calls()
    assert rec.log == [("started", call.linkedid), ("answered", call.linkedid)]
    assert call.started_at == clock.now - 1  # Duration: 00:00:01
    assert call.answered_at == clock.now - 1  # from the dialled AppDial leg
    callee = table.channel("1795426556.40")
    assert callee is not None and callee.dialed and callee.is_up
    assert callee.bridge_id == "48bfad5a-d2d7-4b86-b046-524755b1bab9"
    # Nothing changed: a second identical listing is a no-op.
    again = table.resync(a4_channel_items())
    assert not again.changed
    assert rec.log == [("started", call.linkedid), ("answered", call.linkedid)]


def test_resync_removes_some_channels_without_ending_the_call() -> None:
    table, clock, rec = make_table()
    items = a4_channel_items()
    table.resync(items)
    summary = table.resync(items[2:])
    assert len(summary.vanished_channels) == 2 and summary.ended_calls == ()
    assert [e[0] for e in rec.log] == ["started", "answered"]
    clock.now += 10
    final = table.resync([])
    assert final.ended_calls == ("1795426555.38",)
    assert rec.log[-1] == ("ended", "1795426555.38", 11, None)


def test_events_after_resync_drive_the_adopted_call() -> None:
    table, _, rec = make_table()
    table.resync(a4_channel_items())
    for uid, name in [
        ("1795426556.40", "Local/150@sim-callee-00000014;1"),
        ("1795426556.41", "Local/150@sim-callee-00000014;2"),
        ("1795426555.38", "Local/150@gw-out-00000013;1"),
        ("1795426555.39", "Local/150@gw-out-00000013;2"),
    ]:
        table.apply(
            Message.of(
                ("Event", "Hangup"), ("Channel", name), ("Uniqueid", uid),
                ("Linkedid", "1795426555.38"), ("Cause", "17"), ("Cause-txt", "User busy"),
            )
        )
    assert rec.log[-1] == ("ended", "1795426555.38", 1, 17)


def test_events_of_unknown_channels_are_ignored() -> None:
    table, _, rec = make_table()
    for name in ("Newstate", "Hangup", "VarSet", "BridgeEnter", "DialEnd"):
        table.apply(Message.of(("Event", name), ("Uniqueid", "9.9"), ("Linkedid", "9.9")))
    table.apply(Message.of(("Event", "Newchannel"), ("Channel", "x")))  # no Uniqueid
    assert rec.log == [] and table.calls() == []


def test_hangup_event_after_resync_removed_the_channel_is_harmless() -> None:
    table, clock, rec = make_table()
    replay("b1", table, clock, until="SoftHangupRequest")
    table.resync([])
    replay_rest = [
        m for m in FrameParser().feed(rx_bytes(recording("b1"))) if m.name == "Hangup"
    ]
    for msg in replay_rest:
        table.apply(msg)
    assert [e[0] for e in rec.log].count("ended") == 1


def test_billsec_prefers_event_timestamps() -> None:
    table, clock, rec = make_table()

    def ev(name: str, ts: float, **kw: str) -> Message:
        base = {"Channel": "PJSIP/1-0", "Uniqueid": "1.1", "Linkedid": "1.1"}
        return Message(tuple({"Event": name, "Timestamp": f"{ts:.6f}", **base, **kw}.items()))

    table.apply(ev("Newchannel", 100.0, ChannelState="4"))
    table.apply(
        Message.of(("Event", "DialEnd"), ("Timestamp", "102.250000"), ("DestUniqueid", "1.1"),
                   ("DestLinkedid", "1.1"), ("DialStatus", "ANSWER"))
    )
    clock.now += 500  # the local clock is not what counts when Asterisk stamps events
    table.apply(ev("Hangup", 164.0, Cause="16", **{"Cause-txt": "Normal Clearing"}))
    assert rec.log[-1] == ("ended", "1.1", 61, 16)


async def test_async_listeners_run_in_order_and_failures_are_contained() -> None:
    clock = FakeClock()
    table = ChannelTable(clock=clock)
    order: list[str] = []

    class Slow:
        async def call_started(self, call: CallInfo) -> None:
            await asyncio.sleep(0.01)
            order.append("started")

        async def call_answered(self, call: CallInfo) -> None:
            order.append("answered")

        async def call_ended(self, call: CallInfo, billsec: int, cause: int | None) -> None:
            order.append(f"ended:{billsec}:{cause}")

    class Broken:
        def call_started(self, call: CallInfo) -> None:
            raise RuntimeError("listener bug")

        async def call_answered(self, call: CallInfo) -> None:
            raise RuntimeError("listener bug")

        def call_ended(self, call: CallInfo, billsec: int, cause: int | None) -> None:
            raise RuntimeError("listener bug")

    table.subscribe(Broken())
    table.subscribe(Slow())
    with capture_logs() as logs:
        replay("d1", table, clock)
        await table.drain()
    await table.close()
    assert order == ["started", "answered", "ended:2:16"]
    assert sum(e["event"] == "ami_call_listener_failed" for e in logs) == 3


def test_unsubscribe_stops_notifications() -> None:
    table, clock, rec = make_table()
    other = Recorder()
    off = table.subscribe(other)
    off()
    replay("c3", table, clock)
    assert other.log == [] and len(rec.log) == 2


async def test_listeners_hear_of_a_resync_after_the_calls_it_ended() -> None:
    """Prepaid settles calls missing from the table only once the table holds the listing
    of the current AMI session: a table still empty after a login is not a call that ended."""

    class Client:  # the two hooks attach() uses, fed by hand as AmiClient would
        logins = 0

        def __init__(self) -> None:
            self.events: list[object] = []
            self.resyncs: list[object] = []

        def subscribe(self, name: str, callback: object) -> object:
            self.events.append(callback)
            return lambda: None

        def on_resync(self, callback: object) -> object:
            self.resyncs.append(callback)
            return lambda: None

    table, clock, _rec = make_table()
    order: list[str] = []

    class Sweeper:
        def call_started(self, call: CallInfo) -> None: ...
        def call_answered(self, call: CallInfo) -> None: ...

        async def call_ended(self, call: CallInfo, billsec: int, cause: int | None) -> None:
            order.append(f"ended:{call.linkedid}")

        async def table_resynced(self) -> None:
            order.append(f"resynced:{table.synced_login}")

    client = Client()
    table.attach(client)  # type: ignore[arg-type]
    table.subscribe(Sweeper())
    replay("b1", table, clock, until="SoftHangupRequest")
    (live,) = table.calls()
    client.logins = 1  # logged in again: the listing has not been applied yet
    assert table.synced_login != client.logins
    (resync,) = client.resyncs
    resync([])  # type: ignore[operator]
    await table.drain()
    assert table.synced_login == client.logins == 1
    assert order == [f"ended:{live.linkedid}", "resynced:1"]

"""gateway.call_events with a real ChannelTable fed a recorded Asterisk call (b1: an
Originate answered, 5 s of talk) and a real MqttPublisher on the real broker: the
decision and the call's life cycle reach a subscriber in order, with the tenant, the
lease, billsec and cause."""

from __future__ import annotations

import asyncio

from ami import ChannelTable
from ami.frames import FrameParser, Message
from gateway.call_events import CallEvents
from gateway.metrics import Metrics
from gateway.mqtt_events import MqttPublisher
from tests.ami.recordings import recording, rx_bytes, timeline
from tests.mqtt.conftest import SITE, Subscriber
from tests.support.servers import MosquittoServer


class RecordedClock:
    """The channel table's clock, at each recorded frame's time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def replay_b1(table: ChannelTable, clock: RecordedClock) -> list[Message]:
    """Feed the table the recorded frames at their recorded times; returns them. The
    recording's own GW_CALL_ID variable stands in for CALLGATE_LEASE."""
    parser = FrameParser()
    seen: list[Message] = []
    for chunk in timeline(recording("b1", "timeline")):
        if chunk.direction != "RX":
            continue
        clock.now = 1000.0 + chunk.t
        for msg in parser.feed(chunk.data.replace(b"GW_CALL_ID", b"CALLGATE_LEASE")):
            seen.append(msg)
            table.apply(msg)
    return seen


def first_channel_of_b1() -> Message:
    return next(m for m in FrameParser().feed(rx_bytes(recording("b1")))
                if m.name == "Newchannel")


async def test_recorded_call_is_published_from_decision_to_hang_up(
        mosquitto_proc: MosquittoServer, subscriber: Subscriber) -> None:
    publisher = MqttPublisher(mosquitto_proc.url, SITE, Metrics())
    publisher.start()
    try:
        async with asyncio.timeout(10):
            while not publisher.connected:
                await asyncio.sleep(0.02)
        hub = CallEvents([publisher])
        clock = RecordedClock()
        table = ChannelTable(clock=clock)
        table.subscribe(hub.listener("ast1"))
        first = first_channel_of_b1()
        # What CallControl publishes when the dialplan's authorize hook runs on it.
        hub.publish("call.authorized", {"call_id": first.get("Uniqueid"), "result": "ALLOW",
                                        "reason": "ok", "lease": "call-b-0001"},
                    tenant="acme")
        events = replay_b1(table, clock)
        await subscriber.wait_for(lambda m: m.kind == "call.ended")
    finally:
        await publisher.close()

    got = subscriber.messages
    assert [m.kind for m in got] == ["call.authorized", "call.started", "call.answered",
                                     "call.ended"]
    linkedid = first.get("Linkedid")
    for m in got:
        assert m.topic == f"callgate/{SITE}/events/{m.kind.replace('.', '/')}"
        assert (m.body["v"], m.body["site"], m.body["tenant"]) == (1, SITE, "acme")
        assert m.qos == 1
    assert {m.body["call_id"] for m in got[1:]} == {linkedid}
    assert [m.body["lease"] for m in got[2:]] == ["call-b-0001", "call-b-0001"]
    ended = got[-1].body
    cdr_billsec = max(int(m.get("BillableSeconds") or 0) for m in events if m.name == "Cdr")
    assert (ended["billsec"], ended["cause"], ended["cause_txt"]) == (
        cdr_billsec, 16, "Normal Clearing")
    assert ended["answered"] is True and ended["ended_by"] == "hangup"
    assert ended["dial_statuses"][0] == "ANSWER"
    assert cdr_billsec == 5


async def test_a_failing_sink_does_not_stop_the_others() -> None:
    class Broken:
        def publish(self, kind: str, payload: dict[str, object],
                    tenant: str | None = None) -> None:
            raise RuntimeError("sink down")

    class Kept:
        def __init__(self) -> None:
            self.kinds: list[str] = []

        def publish(self, kind: str, payload: dict[str, object],
                    tenant: str | None = None) -> None:
            self.kinds.append(kind)

    kept = Kept()
    hub = CallEvents([Broken(), None, kept])
    clock = RecordedClock()
    table = ChannelTable(clock=clock)
    table.subscribe(hub.listener("ast1"))
    replay_b1(table, clock)
    assert kept.kinds == ["call.started", "call.answered", "call.ended"]

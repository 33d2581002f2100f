"""MQTT from the real daemon while the simulated Asterisk sends calls through it: what a
subscriber gets for an allowed call and a refused one, and that a stopped broker never
holds up a call decision (the events are dropped and counted instead)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.mqtt.conftest import SITE, Received, Stack, Subscriber
from tests.support.daemon import DaemonProcess
from tests.support.servers import MosquittoServer, mosquitto_server

STAY_UP = "150"  # the simulated far end answers and stays up


def with_mqtt(stack: Stack, url: str, queue_size: int) -> None:
    stack.config_text += f'\n[mqtt]\nurl = "{url}"\nqueue_size = {queue_size}\n'


async def test_allowed_and_refused_calls_are_published_with_tenant_lease_and_cause(
        stack: Stack, mosquitto_proc: MosquittoServer, subscriber: Subscriber) -> None:
    with_mqtt(stack, mosquitto_proc.url, 1000)
    await stack.limits.settings.set_tenant_limit("acme", "outbound", 1)
    await stack.start_daemon()

    call = stack.place(STAY_UP)
    allowed = await stack.decided(call)
    assert allowed["CALLGATE_RESULT"] == "ALLOW"
    refused_call = stack.place(STAY_UP)
    refused = await stack.decided(refused_call)
    assert (refused["CALLGATE_RESULT"], refused["CALLGATE_REASON"]) == ("DENY", "tenant_limit")
    # A trunk call's first channel runs the hook: the AGI call id is the call's Linkedid.
    call_id, refused_id = call.g2.linkedid, refused_call.g2.linkedid
    assert call.g2.uniqueid == call_id

    await subscriber.wait_for(lambda m: m.kind == "call.answered"
                              and m.body["call_id"] == call_id)
    await asyncio.sleep(1.2)  # a second of talk, so billsec counts it
    stack.hang_up(call)
    await subscriber.wait_for(lambda m: m.kind == "call.ended" and m.body["call_id"] == call_id)
    await subscriber.wait_for(lambda m: m.kind == "call.ended"
                              and m.body["call_id"] == refused_id)

    mine = subscriber.of_call(call_id)
    kinds = [m.kind for m in mine]
    assert sorted(kinds) == ["call.answered", "call.authorized", "call.ended", "call.started"]
    # Asterisk creates the channel before its dialplan asks the gateway, so call.started
    # and call.authorized may come either way round; both precede the answer.
    assert kinds.index("call.authorized") < kinds.index("call.answered")
    assert kinds.index("call.started") < kinds.index("call.answered")
    assert kinds.index("call.answered") < kinds.index("call.ended")
    for m in subscriber.messages:
        assert m.topic == f"callgate/{SITE}/events/{m.kind.replace('.', '/')}"
        assert (m.body["v"], m.body["site"]) == (1, SITE)
    by_kind: dict[str, Received] = {m.kind: m for m in mine}
    authorized = by_kind["call.authorized"]
    assert authorized.qos == 1
    assert (authorized.body["tenant"], authorized.body["result"], authorized.body["lease"],
            authorized.body["trunk"]) == ("acme", "ALLOW", allowed["CALLGATE_LEASE"], "e1-1")
    for kind in ("call.answered", "call.ended"):
        assert by_kind[kind].body["tenant"] == "acme"
        assert by_kind[kind].body["lease"] == allowed["CALLGATE_LEASE"]
    ended = by_kind["call.ended"].body
    assert ended["answered"] is True and ended["billsec"] >= 1 and ended["cause"] == 16
    assert ended["duration"] >= ended["billsec"]

    theirs = {m.kind: m for m in subscriber.of_call(refused_id)}
    denied = theirs["limit.denied"]
    assert denied.qos == 1
    assert (denied.body["tenant"], denied.body["reason"], denied.body["refused_scope"]) == (
        "acme", "tenant_limit", "tenant/acme/outbound")
    refused_end = theirs["call.ended"].body
    assert refused_end["tenant"] == "acme"  # known from the decision: no lease, no request
    assert (refused_end["answered"], refused_end["billsec"], refused_end["cause"]) == (
        False, 0, int(refused["CALLGATE_CAUSE"]))
    assert (refused_end["result"], refused_end["reason"]) == ("DENY", "tenant_limit")


def dropped(daemon: DaemonProcess) -> float:
    status, body = daemon.http_get("/metrics")
    assert status == 200
    found = re.search(rb"^callgate_mqtt_dropped_total ([0-9.e+]+)$", body, re.M)
    assert found, body.decode()[:2000]
    return float(found.group(1))


async def test_a_stopped_broker_never_holds_up_a_decision(stack: Stack, tmp_path: Path) -> None:
    with mosquitto_server(tmp_path / "broker") as broker:
        with_mqtt(stack, broker.url, 4)
        daemon = await stack.start_daemon()
        async with asyncio.timeout(10):
            while not any(e.get("event") == "mqtt_connected" for e in daemon.log_events()):
                await asyncio.sleep(0.05)
        broker.proc.terminate()
        await asyncio.to_thread(broker.proc.wait, 10)
        assert dropped(daemon) == 0

        calls = [stack.place(STAY_UP) for _ in range(20)]
        decided = await asyncio.gather(*(stack.decided(c, 5.0) for c in calls))
        assert [d["CALLGATE_RESULT"] for d in decided] == ["ALLOW"] * 20
        # 20 decisions and 20 call starts at least, into a queue of 4.
        async with asyncio.timeout(10):
            while await asyncio.to_thread(dropped, daemon) < 40 - 4 - 1:
                await asyncio.sleep(0.1)

        for call in calls:
            stack.hang_up(call)
        await stack.wait_in_use({("tenant_outbound", "acme"): 0, ("trunk", "e1-1"): 0}, 10)

"""AmiClient against a real socket server replaying what Asterisk 22 answered."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest
from structlog.testing import capture_logs

from ami.channels import ChannelTable
from ami.client import AmiClient, AmiSettings
from ami.errors import AmiAuthError, AmiDisconnected, AmiNotConnected, AmiTimeout
from ami.frames import Message
from tests.ami.conftest import MakeClient, MakeServer


class RecordingSleep:
    """Stands in for asyncio.sleep in the reconnect loop: records the delays asked for
    and lets the loop go on only while `gate` is open."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self._asked = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        asked, self._asked = self._asked, asyncio.Event()
        asked.set()
        await self.gate.wait()
        await asyncio.sleep(0)

    async def wait_for_count(self, n: int) -> None:
        async with asyncio.timeout(5):
            while len(self.delays) < n:
                await self._asked.wait()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_login_success_then_actions(ami_server: MakeServer, ami_client: MakeClient) -> None:
    server = await ami_server()
    with capture_logs() as logs:
        client = ami_client(server.port)
        await client.wait_ready(5)
    assert client.logged_in
    assert client.banner == "Asterisk Call Manager/11.0.0"
    login = server.current.received[0]
    assert login.get("Action") == "Login" and login.get("Username") == "gateway"
    assert login.get("Secret") == "gateway"
    ping = await client.action("Ping")
    assert ping.ok and ping.response.get("Ping") == "Pong"
    getvar = await client.action("Getvar", {"Variable": "NOT_SET_ANYWHERE"})
    assert getvar.ok and getvar.response.get("Value") == ""
    missing = await client.action("Hangup", [("Channel", "Local/none-00000000;1")])
    assert not missing.ok and missing.message == "No such channel"
    logged = {e["event"] for e in logs}
    assert {"ami_connected", "ami_logged_in"} <= logged
    assert all(e.get("asterisk") == "pbx1" for e in logs if e["event"].startswith("ami_"))
    assert not any("gateway" == e.get("secret") for e in logs)


async def test_action_ids_are_unique_per_client(
    ami_server: MakeServer, ami_client: MakeClient
) -> None:
    server = await ami_server()
    one, two = ami_client(server.port), ami_client(server.port)
    await one.wait_ready(5)
    await two.wait_ready(5)
    await asyncio.gather(*(c.action("Ping") for c in (one, two) for _ in range(20)))
    ids = [m.action_id for conn in server.conns for m in conn.received]
    assert len(ids) == len(set(ids)) == 2 * 22  # Login, CoreShowChannels, 20 Pings each


async def test_wrong_secret_surfaces_auth_error_and_keeps_retrying(
    ami_server: MakeServer, ami_client: MakeClient
) -> None:
    server = await ami_server(auth_fail_delay=0.05)
    sleep = RecordingSleep()
    with capture_logs() as logs:
        client = ami_client(server.port, secret="wrong", sleep=sleep)
        with pytest.raises(AmiAuthError, match="Authentication failed"):
            await client.wait_ready(5)
        assert not client.logged_in
        with pytest.raises(AmiNotConnected):
            await client.action("Ping")
        await server.wait_until(lambda: server.login_attempts >= 3)
        # The operator fixes the secret on the Asterisk side: the next attempt logs in.
        sleep.gate.clear()
        await sleep.wait_for_count(len(sleep.delays) + 1)
        server.secret = "wrong"
        attempts = server.login_attempts
        sleep.gate.set()
        await server.wait_until(lambda: server.login_attempts > attempts)
        await client.wait_ready(5)
    assert client.logged_in
    failed = [e for e in logs if e["event"] == "ami_login_failed"]
    assert len(failed) >= 3
    assert failed[0]["reason"] == "Authentication failed" and failed[0]["log_level"] == "error"
    assert sleep.delays[1] > sleep.delays[0]  # backoff grows while refused


async def test_wait_ready_times_out_with_the_reason(ami_client: MakeClient) -> None:
    client = ami_client(closed_port(), sleep=RecordingSleep())
    with pytest.raises(AmiTimeout, match=r"Connect|refused|Errno"):
        await client.wait_ready(0.3)


async def test_action_before_login_fails_at_once_and_sends_nothing(
    ami_server: MakeServer, ami_client: MakeClient
) -> None:
    server = await ami_server()
    client = ami_client(server.port, start=False)
    with pytest.raises(AmiNotConnected):
        await client.action("Ping")
    with pytest.raises(AmiNotConnected):
        await client.wait_ready(1)
    client.start()
    await client.wait_ready(5)
    assert [m.get("Action") for m in server.current.received] == ["Login", "CoreShowChannels"]


async def test_server_refuses_actions_before_login_like_asterisk(ami_server: MakeServer) -> None:
    """The replay server answers un-authenticated actions as a3 recorded it."""
    server = await ami_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    await reader.readline()
    writer.write(b"Action: Ping\r\nActionID: early-1\r\n\r\n")
    reply = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    assert reply == b"Response: Error\r\nActionID: early-1\r\nMessage: Permission denied\r\n\r\n"


async def test_action_timeout(ami_server: MakeServer, ami_client: MakeClient) -> None:
    server = await ami_server()
    server.hold.add("getvar")
    client = ami_client(server.port)
    await client.wait_ready(5)
    with capture_logs() as logs, pytest.raises(AmiTimeout):
        await client.action("Getvar", {"Variable": "X"}, timeout=0.1)
    assert any(e["event"] == "ami_action_timeout" for e in logs)
    assert client.logged_in
    assert (await client.action("Ping")).ok


async def test_event_lists_are_collected(ami_server: MakeServer, ami_client: MakeClient) -> None:
    server = await ami_server(scenario="a4")
    client = ami_client(server.port)
    await client.wait_ready(5)
    channels = await client.action("CoreShowChannels")
    assert channels.ok and channels.response.get("EventList") == "start"
    assert [m.name for m in channels.events] == ["CoreShowChannel"] * 4
    assert channels.complete is not None and channels.complete.get("ListItems") == "4"
    assert {m.get("Linkedid") for m in channels.events} == {"1795426555.38"}
    status = await client.action("Status")
    assert len(status.events) == 4 and status.complete is not None
    assert status.complete.get("Items") == "4"
    one = await client.action(
        "Status",
        [("Channel", "Local/150@gw-out-00000013;2"), ("Variables", "GW_CALL_ID,GW_AUTH")],
    )
    (item,) = one.events
    assert item.get_all("Variable") == ["GW_CALL_ID=call-a-0002", "GW_AUTH=OK"]
    bridges = await client.action("BridgeList")
    assert bridges.events[0].get("BridgeNumChannels") == "2"


async def test_empty_event_list(ami_server: MakeServer, ami_client: MakeClient) -> None:
    server = await ami_server()
    client = ami_client(server.port)
    await client.wait_ready(5)
    result = await client.action("CoreShowChannels")
    assert result.events == [] and result.complete is not None
    assert result.complete.get("ListItems") == "0"


async def test_command_output_asterisk_22_style(
    ami_server: MakeServer, ami_client: MakeClient
) -> None:
    server = await ami_server()
    client = ami_client(server.port)
    await client.wait_ready(5)
    lines = await client.command("module show like agi")
    assert len(lines) == 4
    assert lines[1].startswith("res_agi.so") and lines[-1] == "2 modules loaded"
    (version,) = await client.command("core show version")
    assert version.startswith("Asterisk 22.10.1 built by root")


async def test_command_output_legacy_follows_style(
    ami_server: MakeServer, ami_client: MakeClient
) -> None:
    server = await ami_server()
    server.legacy_command = True
    client = ami_client(server.port)
    await client.wait_ready(5)
    (version,) = await client.command("core show version")
    assert version.startswith("Asterisk 13.38.3 built by root")


async def test_pending_originate_fails_on_disconnect_and_is_never_resent(
    ami_server: MakeServer, ami_client: MakeClient
) -> None:
    server = await ami_server()
    server.hold.add("originate")
    client = ami_client(server.port)
    await client.wait_ready(5)
    originate = asyncio.create_task(
        client.action(
            "Originate",
            [("Channel", "Local/100@gw-out"), ("Context", "sim-caller"), ("Exten", "s")],
            timeout=10,
        )
    )
    await server.wait_until(lambda: server.counts["originate"] == 1)
    server.drop()
    with pytest.raises(AmiDisconnected):
        await originate
    await server.wait_until(lambda: len(server.conns) == 2)
    await client.wait_ready(5)
    assert (await client.action("Ping")).ok  # anything re-sent would have arrived before
    assert server.counts["originate"] == 1
    assert [m.get("Action") for m in server.current.received] == [
        "Login",
        "CoreShowChannels",
        "Ping",
    ]


async def test_utf8_split_across_two_sends_arrives_intact(
    ami_server: MakeServer, ami_client: MakeClient
) -> None:
    server = await ami_server()
    client = ami_client(server.port)
    got: asyncio.Queue[Message] = asyncio.Queue()
    client.subscribe("NewCallerid", got.put_nowait)
    await client.wait_ready(5)
    frame = "Event: NewCallerid\r\nUniqueid: 1.1\r\nCallerIDName: Jürgen\r\n\r\n".encode()
    cut = frame.index("ü".encode()) + 1
    await server.send(frame[:cut], frame[cut:])
    msg = await asyncio.wait_for(got.get(), 5)
    assert msg.get("CallerIDName") == "Jürgen"


async def test_subscriptions_sync_async_wildcard_and_failing_callbacks(
    ami_server: MakeServer, ami_client: MakeClient
) -> None:
    server = await ami_server()
    client = ami_client(server.port)
    sync_seen: list[str] = []
    async_seen: list[str] = []
    all_seen: list[str] = []

    def boom(msg: Message) -> None:
        raise RuntimeError("subscriber bug")

    async def slow(msg: Message) -> None:
        await asyncio.sleep(0.01)
        async_seen.append(msg.get("N") or "")

    client.subscribe("FullyBooted", lambda m: sync_seen.append(m.name))
    client.subscribe("userevent", boom)
    client.subscribe("UserEvent", slow)
    client.subscribe("*", lambda m: all_seen.append(m.name))
    with capture_logs() as logs:
        await client.wait_ready(5)
        await server.send(
            b"".join(b"Event: UserEvent\r\nN: %d\r\n\r\n" % i for i in range(5))
        )
        assert (await client.action("Ping")).ok  # the reader survived the failing callback
        await client.drain_callbacks()
    assert sync_seen == ["FullyBooted"]
    assert async_seen == ["0", "1", "2", "3", "4"]  # in order despite awaiting
    assert all_seen[:2] == ["FullyBooted", "SuccessfulAuth"]
    assert all_seen.count("UserEvent") == 5
    assert sum(e["event"] == "ami_callback_failed" for e in logs) == 5


async def test_unsubscribe(ami_server: MakeServer, ami_client: MakeClient) -> None:
    server = await ami_server()
    client = ami_client(server.port)
    seen: list[str] = []
    off = client.subscribe("UserEvent", lambda m: seen.append(m.get("N") or ""))
    await client.wait_ready(5)
    await server.send(b"Event: UserEvent\r\nN: 1\r\n\r\n")
    assert (await client.action("Ping")).ok
    off()
    await server.send(b"Event: UserEvent\r\nN: 2\r\n\r\n")
    assert (await client.action("Ping")).ok
    assert seen == ["1"]


async def test_originate_response_event_reaches_subscribers_after_the_action(
    ami_server: MakeServer, ami_client: MakeClient
) -> None:
    """OriginateResponse arrives later with the Originate's ActionID (b1): an event."""
    server = await ami_server()
    server.hold.add("originate")
    client = ami_client(server.port)
    await client.wait_ready(5)
    got: asyncio.Queue[Message] = asyncio.Queue()
    client.subscribe("OriginateResponse", got.put_nowait)
    task = asyncio.create_task(client.action("Originate", [("Channel", "Local/1@x")]))
    await server.wait_until(lambda: server.counts["originate"] == 1)
    aid = server.current.received[-1].action_id or ""
    await server.send(
        f"Response: Success\r\nActionID: {aid}\r\nMessage: Originate successfully queued\r\n\r\n"
        f"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: {aid}\r\n"
        f"Response: Success\r\nChannel: Local/1@x-00000002;1\r\nReason: 4\r\n\r\n".encode()
    )
    result = await task
    assert result.ok and result.message == "Originate successfully queued"
    event = await asyncio.wait_for(got.get(), 5)
    assert event.action_id == aid and event.get("Reason") == "4"


async def test_resync_after_each_login_feeds_the_channel_table(
    ami_server: MakeServer, ami_client: MakeClient
) -> None:
    server = await ami_server(scenario="a4")
    client = ami_client(server.port)
    table = ChannelTable()
    table.attach(client)
    batches: list[int] = []
    client.on_resync(lambda items: batches.append(len(items)))
    await client.wait_ready(5)
    (call,) = table.calls()
    assert call.linkedid == "1795426555.38" and len(call.live_channels) == 4
    assert call.answered
    server.drop()
    await server.wait_until(lambda: len(server.conns) == 2)
    await client.wait_ready(5)
    assert batches == [4, 4]
    assert len(table.calls()) == 1


async def test_half_open_socket_is_detected_by_ping(
    ami_server: MakeServer, ami_client: MakeClient
) -> None:
    server = await ami_server()
    server.answer_pings = False  # the peer keeps the socket but never answers
    with capture_logs() as logs:
        client = ami_client(server.port, ping_interval=0.05, action_timeout=0.3)
        await client.wait_ready(5)
        await server.wait_until(lambda: len(server.conns) >= 2)
        server.answer_pings = True
        await client.wait_ready(5)
    assert any(e["event"] == "ami_ping_timeout" for e in logs)
    assert any(e["event"] == "ami_disconnected" for e in logs)
    assert client.logged_in


async def test_reconnect_backoff_grows_and_is_capped() -> None:
    sleep = RecordingSleep()
    client = AmiClient(
        AmiSettings(
            name="pbx1",
            host="127.0.0.1",
            port=closed_port(),
            reconnect_min=0.5,
            reconnect_max=8.0,
        ),
        rng=random.Random(7),
        sleep=sleep,
    )
    client.start()
    try:
        await sleep.wait_for_count(9)
    finally:
        await client.close()
    bases = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    for delay, base in zip(sleep.delays, bases, strict=False):
        assert 0.8 * base <= delay <= base
    assert len(set(sleep.delays)) == len(sleep.delays)  # jittered, not lock-step
    assert max(sleep.delays) <= 8.0


async def test_backoff_restarts_from_the_minimum_after_a_login(
    ami_server: MakeServer, ami_client: MakeClient
) -> None:
    server = await ami_server()
    sleep = RecordingSleep()
    client = ami_client(server.port, sleep=sleep, reconnect_min=1.0, reconnect_max=60.0)
    await client.wait_ready(5)
    server.drop()
    await sleep.wait_for_count(1)
    assert 0.8 <= sleep.delays[0] <= 1.0


async def test_close_fails_pending_actions(ami_server: MakeServer, ami_client: MakeClient) -> None:
    server = await ami_server()
    server.hold.add("getvar")
    client = ami_client(server.port)
    await client.wait_ready(5)
    pending = asyncio.create_task(client.action("Getvar", {"Variable": "X"}))
    await server.wait_until(lambda: server.counts["getvar"] == 1)
    await client.close()
    with pytest.raises(AmiDisconnected):
        await pending
    assert not client.logged_in


def test_settings_validate_and_hide_the_secret() -> None:
    settings = AmiSettings(name="p", host="h", secret="s3cret")
    assert "s3cret" not in repr(settings)
    with pytest.raises(ValueError):
        AmiSettings(name="p", host="h", reconnect_min=5, reconnect_max=1)
    with pytest.raises(ValueError):
        AmiSettings(name="p", host="h", action_timeout=0)

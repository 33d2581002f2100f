"""The FastAGI server's byte handling over real sockets, under asyncio and under uvloop (the
daemon's loop): reads split anywhere, many connections at once, peers that misbehave."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest

from gateway.agi import (
    AgiCommandError,
    AgiConnectionClosed,
    AgiProtocolError,
    AgiRequest,
    AgiServer,
    AgiSession,
    Router,
    set_decision,
)
from sim.fastagi import FastAgiCall
from tests.agi.conftest import Logs, ServerFactory, until

UNDER_UVLOOP_TOO = True  # tests/agi/conftest.py runs this module under both loops


Handler = Callable[[AgiRequest, AgiSession], Awaitable[None]]


def _router(handler: Handler, timeout: float | None = None) -> Router:
    router = Router()
    router.register("t", handler, timeout=timeout)
    return router


class RawAsterisk:
    """A peer that sends a valid env block, then does what the test says, byte by byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, server: AgiServer, uniqueid: str = "1.1") -> RawAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
        env = FastAgiCall("127.0.0.1", server.bound_port, "t", {"agi_uniqueid": uniqueid})
        writer.write(env.env_block())
        await writer.drain()
        return cls(reader, writer)

    async def command(self) -> bytes:
        async with asyncio.timeout(5):
            return await self.reader.readline()

    async def send_slowly(self, data: bytes) -> None:
        for i in range(len(data)):
            self.writer.write(data[i : i + 1])
            await self.writer.drain()
            await asyncio.sleep(0.001)

    def reset(self) -> None:
        """Close with an RST, as a crashed peer's kernel would."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


class Recorder:
    """Runs `check` as the route; keeps what it raised and tells when it is done."""

    def __init__(self, check: Handler) -> None:
        self.check = check
        self.failures: list[BaseException] = []
        self.done = asyncio.Event()

    async def __call__(self, request: AgiRequest, session: AgiSession) -> None:
        try:
            await self.check(request, session)
        except BaseException as exc:
            self.failures.append(exc)
            raise
        finally:
            self.done.set()

    async def wait(self) -> None:
        async with asyncio.timeout(5):
            await self.done.wait()


async def test_env_block_arriving_byte_by_byte(agi_server: ServerFactory) -> None:
    async def allow(request: AgiRequest, session: AgiSession) -> None:
        await set_decision(session, "ALLOW", "ok", 0, f"lease-{request.args['n']}", 0)

    server = await agi_server(_router(allow))
    call = FastAgiCall("127.0.0.1", server.bound_port, "t?n=7", env_split_at=range(1, 2000))
    outcome = await asyncio.wait_for(call.run(), 20)
    assert outcome.variables["CALLGATE_LEASE"] == "lease-7"


async def test_replies_arriving_byte_by_byte(agi_server: ServerFactory) -> None:
    seen: dict[str, object] = {}

    async def check(request: AgiRequest, session: AgiSession) -> None:
        seen["value"] = await session.get_variable("X")
        seen["hung_up"] = session.hung_up
        with pytest.raises(AgiCommandError) as usage:
            await session.command("SET VARIABLE")
        seen["usage"] = usage.value.text

    recorder = Recorder(check)
    server = await agi_server(_router(recorder))
    peer = await RawAsterisk.connect(server)
    assert await peer.command() == b"GET VARIABLE X\n"
    await peer.send_slowly(b"HANGUP\n200 result=1 (a b)\n")
    assert await peer.command() == b"SET VARIABLE\n"
    await peer.send_slowly(b"520-Invalid command syntax.\nUsage: x\n520 End of proper usage.\n")
    await recorder.wait()

    assert recorder.failures == []
    assert seen == {
        "value": "a b",
        "hung_up": True,
        "usage": "520-Invalid command syntax.\nUsage: x\n520 End of proper usage.",
    }


async def test_many_connections_at_once_each_get_their_own_answer(
    agi_server: ServerFactory,
) -> None:
    calls = 200
    inside = 0
    everyone_in = asyncio.Event()

    async def handler(request: AgiRequest, session: AgiSession) -> None:
        nonlocal inside
        inside += 1
        if inside == calls:
            everyone_in.set()
        await everyone_in.wait()  # all connections are open and waiting together
        own = await session.get_variable("OWN")
        await session.set_variable("ECHO", f"{request.call_id}|{own}")

    server = await agi_server(_router(handler))
    runs = [
        FastAgiCall("127.0.0.1", server.bound_port, "t", {"agi_uniqueid": f"u.{i}"},
                    {"OWN": f"own-{i}"}).run()
        for i in range(calls)
    ]
    outcomes = await asyncio.wait_for(asyncio.gather(*runs), 30)

    assert [o.variables["ECHO"] for o in outcomes] == [f"u.{i}|own-{i}" for i in range(calls)]
    await until(lambda: server.active_connections == 0)


async def test_peer_that_resets_mid_command(agi_server: ServerFactory, logs: Logs) -> None:
    async def check(request: AgiRequest, session: AgiSession) -> None:
        await session.get_variable("X")

    recorder = Recorder(check)
    server = await agi_server(_router(recorder))
    peer = await RawAsterisk.connect(server)
    assert await peer.command() == b"GET VARIABLE X\n"
    peer.reset()
    await recorder.wait()

    assert [type(f) for f in recorder.failures] == [AgiConnectionClosed]
    await until(lambda: server.active_connections == 0)
    assert logs.events("agi_connection_lost")
    assert not logs.events("agi_connection_failed")
    outcome = await FastAgiCall("127.0.0.1", server.bound_port, "t", {}, {"X": "1"}).run()
    assert outcome.commands == ("GET VARIABLE X",)  # the next call is served as usual


async def test_reply_line_past_the_cap_makes_the_session_unusable(
    agi_server: ServerFactory,
) -> None:
    seen: list[BaseException] = []

    async def check(request: AgiRequest, session: AgiSession) -> None:
        with pytest.raises(AgiProtocolError) as too_long:
            await session.get_variable("X")
        seen.append(too_long.value)
        assert not session.usable

    recorder = Recorder(check)
    server = await agi_server(_router(recorder))
    peer = await RawAsterisk.connect(server)
    await peer.command()
    peer.writer.write(b"200 result=1 (" + b"x" * (100 * 1024))
    await recorder.wait()

    assert recorder.failures == []
    assert "reply line to 'GET VARIABLE X' is too long" in str(seen[0])
    peer.writer.close()


async def test_handler_timeout_during_a_command_still_denies(
    agi_server: ServerFactory, logs: Logs
) -> None:
    """The route's time runs out while Asterisk has not answered yet: DENY goes out after."""

    async def slow(request: AgiRequest, session: AgiSession) -> None:
        await session.get_variable("X")

    server = await agi_server(_router(slow, timeout=0.3))
    peer = await RawAsterisk.connect(server)
    assert await peer.command() == b"GET VARIABLE X\n"
    deny = await peer.command()  # written once the route's time is up
    peer.writer.write(b"200 result=1 (late)\n200 result=0\n")

    assert deny.startswith(b'EXEC MSet "CALLGATE_REASON=backend_unavailable,')
    assert deny.endswith(b'CALLGATE_RESULT=DENY"\n')
    async with asyncio.timeout(5):
        assert await peer.reader.read() == b""  # then the server closes
    assert logs.events("agi_handler_timeout")[0]["timeout"] == 0.3
    await until(lambda: server.active_connections == 0)


async def test_request_timeout_change_applies_to_the_next_connection(
    agi_server: ServerFactory, logs: Logs
) -> None:
    async def never(request: AgiRequest, session: AgiSession) -> None:
        raise AssertionError("no request expected")

    server = await agi_server(_router(never))
    server.request_timeout = 0.2  # as a SIGHUP reload does
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    writer.write(b"agi_network: yes\n")
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    writer.close()
    assert "within 0.2s" in logs.events("agi_garbage_closed")[0]["reason"]


async def test_close_ends_connections_that_have_not_sent_their_env_block(
    agi_server: ServerFactory, logs: Logs
) -> None:
    async def never(request: AgiRequest, session: AgiSession) -> None:
        raise AssertionError("no request expected")

    server = await agi_server(_router(never))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    await until(lambda: server.active_connections == 1)

    async with asyncio.timeout(5):
        await server.close()
        assert await reader.read() == b""
    writer.close()
    assert server.active_connections == 0
    assert logs.events("agi_connections_cancelled")[0]["count"] == 1


async def test_commands_from_several_tasks_go_out_one_at_a_time(
    agi_server: ServerFactory,
) -> None:
    """res_agi.c only reads the next command after replying: never two in flight."""
    seen: dict[str, object] = {}

    async def check(request: AgiRequest, session: AgiSession) -> None:
        tasks = [asyncio.create_task(session.get_variable(n)) for n in ("A", "B", "C")]
        await asyncio.sleep(0)  # A is sent, B and C wait for their turn
        tasks[1].cancel()
        seen["values"] = [await tasks[0], await tasks[2]]
        seen["b_cancelled"] = tasks[1].cancelled()

    recorder = Recorder(check)
    server = await agi_server(_router(recorder))
    peer = await RawAsterisk.connect(server)
    assert await peer.command() == b"GET VARIABLE A\n"
    with pytest.raises(TimeoutError):  # nothing else while A is unanswered
        await asyncio.wait_for(peer.reader.readline(), 0.1)
    peer.writer.write(b"200 result=1 (a)\n")
    assert await peer.command() == b"GET VARIABLE C\n"  # B gave up its place
    peer.writer.write(b"200 result=1 (c)\n")
    await recorder.wait()

    assert recorder.failures == []
    assert seen == {"values": ["a", "c"], "b_cancelled": True}

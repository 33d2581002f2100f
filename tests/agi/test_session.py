"""AgiSession against sim/fastagi (and raw peers for the failure cases), over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gateway.agi import (
    AgiCommandError,
    AgiConnectionClosed,
    AgiRequest,
    AgiServer,
    AgiSession,
    AgiTimeout,
    ChannelDead,
    Router,
)
from sim.fastagi import FastAgiCall, FastAgiOutcome
from tests.agi.conftest import Logs, ServerFactory

Check = Callable[[AgiRequest, AgiSession], Awaitable[None]]


async def _run_route(
    agi_server: ServerFactory, check: Check, **call_options: object
) -> tuple[FastAgiOutcome, list[BaseException]]:
    """Serve one call through `check`; return the sim's outcome and what the handler raised."""
    failures: list[BaseException] = []

    async def handler(request: AgiRequest, session: AgiSession) -> None:
        try:
            await check(request, session)
        except BaseException as exc:
            failures.append(exc)
            raise

    router = Router()
    router.register("t", handler)
    server: AgiServer = await agi_server(router)
    call = FastAgiCall(
        "127.0.0.1", server.bound_port, "t", {"agi_channel": "PJSIP/6001-0000000a"},
        {"GW_CALL_ID": "call-s1"}, **call_options,  # type: ignore[arg-type]
    )
    return await asyncio.wait_for(call.run(), 10), failures


async def test_hangup_line_in_front_of_a_reply(agi_server: ServerFactory) -> None:
    """e2: the caller hangs up while the route works; the next reply carries HANGUP."""
    box: list[FastAgiCall] = []
    seen: dict[str, object] = {}

    async def check(request: AgiRequest, session: AgiSession) -> None:
        assert await session.get_variable("GW_CALL_ID") == "call-s1"
        assert not session.hung_up
        box[0].hangup()  # as AMI Hangup would, while the gateway thinks
        seen["value"] = await session.get_variable("GW_CALL_ID")
        seen["hung_up"] = session.hung_up
        await session.set_variable("AFTER", "still works")  # SET VARIABLE works on a dead channel
        assert await session.exec_app("NoOp", "after hangup") == 0
        with pytest.raises(ChannelDead) as dead:
            await session.stream_file("beep")
        seen["code"] = dead.value.code
        with pytest.raises(ChannelDead):
            await session.answer()
        assert session.usable

    router = Router()

    async def handler(request: AgiRequest, session: AgiSession) -> None:
        await check(request, session)

    router.register("t", handler)
    server = await agi_server(router)
    call = FastAgiCall("127.0.0.1", server.bound_port, "t", {}, {"GW_CALL_ID": "call-s1"})
    box.append(call)
    outcome = await asyncio.wait_for(call.run(), 10)

    assert seen == {"value": "call-s1", "hung_up": True, "code": 511}
    assert outcome.status == "HANGUP"
    assert outcome.variables["AFTER"] == "still works"
    assert outcome.rx_bytes.count(b"HANGUP\n") == 1


async def test_511_after_the_agi_hangup_command(agi_server: ServerFactory) -> None:
    """c6: the route hangs the channel up itself, then only dead-safe commands work."""

    async def check(request: AgiRequest, session: AgiSession) -> None:
        await session.set_variable("GW_AUTH", "DENIED")
        assert await session.hangup() is True
        assert await session.get_variable("GW_AUTH") == "DENIED"
        assert session.hung_up
        with pytest.raises(ChannelDead):
            await session.say_number(42)
        with pytest.raises(ChannelDead):
            await session.get_data("enter-pin", 3000, 4)

    outcome, failures = await _run_route(agi_server, check)
    assert failures == []
    assert outcome.status == "HANGUP"


async def test_asterisk_errors_raise_and_session_stays_usable(agi_server: ServerFactory) -> None:
    async def check(request: AgiRequest, session: AgiSession) -> None:
        with pytest.raises(AgiCommandError) as unknown:
            await session.command("NO SUCH COMMAND")
        assert unknown.value.code == 510
        with pytest.raises(AgiCommandError) as usage:
            await session.command("SET VARIABLE")
        assert usage.value.code == 520
        assert "Sets a variable to the current channel." in usage.value.text
        assert await session.get_variable("GW_CALL_ID") == "call-s1"
        assert await session.get_variable("NO_SUCH_VAR") is None
        full = await session.get_full_variable("${CALLERID(num)}-${EXTEN}")
        assert full == "unknown-s"
        assert await session.get_full_variable("${EXTEN}", "PJSIP/6001-0000000a") == "s"
        assert await session.get_full_variable("${EXTEN}", "PJSIP/none") is None
        await session.verbose('checked "all" \\ good', 3)

    _, failures = await _run_route(agi_server, check)
    assert failures == []


async def test_prompts_and_digits(agi_server: ServerFactory) -> None:
    async def check(request: AgiRequest, session: AgiSession) -> None:
        await session.answer()
        played = await session.stream_file("beep")
        assert (played.result, played.endpos, played.digit) == (0, 3520, None)
        pin = await session.get_data("enter-pin", 5000, 4)
        assert (pin.digits, pin.timed_out) == ("1234", False)
        interrupted = await session.say_number(150, "#")
        assert interrupted.digit == "#"
        partial = await session.get_data("enter-dest", 3000)
        assert (partial.digits, partial.timed_out) == ("49", True)

    _, failures = await _run_route(agi_server, check, dtmf="1234#49")
    assert failures == []


async def _raw_asterisk(
    agi_server: ServerFactory,
    check: Check,
    then: Callable[[asyncio.StreamWriter], Awaitable[None]],
    **server_options: object,
) -> list[BaseException]:
    """A peer that sends a valid env block and then misbehaves as `then` says."""
    failures: list[BaseException] = []
    finished = asyncio.Event()

    async def handler(request: AgiRequest, session: AgiSession) -> None:
        try:
            await check(request, session)
        except BaseException as exc:
            failures.append(exc)
            raise
        finally:
            finished.set()

    router = Router()
    router.register("t", handler)
    server = await agi_server(router, **server_options)
    env = FastAgiCall("127.0.0.1", server.bound_port, "t").env_block()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    writer.write(env)
    await reader.readline()  # the first command
    await then(writer)
    await asyncio.wait_for(finished.wait(), 5)
    writer.close()
    return failures


async def test_no_reply_times_out_and_the_session_is_done(
    agi_server: ServerFactory, logs: Logs
) -> None:
    async def check(request: AgiRequest, session: AgiSession) -> None:
        await session.get_variable("X")

    async def stay_silent(writer: asyncio.StreamWriter) -> None:
        pass

    failures = await _raw_asterisk(agi_server, check, stay_silent, command_timeout=0.2)
    assert [type(f) for f in failures] == [AgiTimeout]
    assert "no reply to 'GET VARIABLE X'" in str(failures[0])
    await asyncio.sleep(0.05)
    assert logs.events("agi_handler_failed")
    assert logs.events("agi_deny_not_sent")[0]["reason"] == "session unusable"


async def test_closed_socket_is_a_clear_error(agi_server: ServerFactory, logs: Logs) -> None:
    async def check(request: AgiRequest, session: AgiSession) -> None:
        await session.get_variable("X")

    async def hang_up_socket(writer: asyncio.StreamWriter) -> None:
        writer.close()

    failures = await _raw_asterisk(agi_server, check, hang_up_socket)
    assert [type(f) for f in failures] == [AgiConnectionClosed]
    assert "closed the connection before answering 'GET VARIABLE X'" in str(failures[0])
    await asyncio.sleep(0.05)
    assert logs.events("agi_connection_lost")


async def test_garbled_reply_makes_the_session_unusable(agi_server: ServerFactory) -> None:
    seen: list[BaseException] = []

    async def check(request: AgiRequest, session: AgiSession) -> None:
        with pytest.raises(Exception) as garbled:
            await session.get_variable("X")
        seen.append(garbled.value)
        assert not session.usable
        with pytest.raises(AgiConnectionClosed):
            await session.get_variable("Y")

    async def garble(writer: asyncio.StreamWriter) -> None:
        writer.write(b"I am not Asterisk\n")

    failures = await _raw_asterisk(agi_server, check, garble)
    assert failures == []
    assert "not an AGI reply" in str(seen[0])


async def test_bad_names_never_reach_the_wire(agi_server: ServerFactory) -> None:
    async def check(request: AgiRequest, session: AgiSession) -> None:
        with pytest.raises(ValueError):
            await session.set_variable("A B", "x")
        with pytest.raises(ValueError):
            await session.get_variable("X\nHANGUP")
        assert session.usable

    outcome, failures = await _run_route(agi_server, check)
    assert failures == []
    assert outcome.commands == ()


async def test_hangup_right_behind_the_env_block(agi_server: ServerFactory) -> None:
    """Asterisk writes HANGUP as soon as it notices; it can share a read with the env block."""
    seen: dict[str, object] = {}

    async def handler(request: AgiRequest, session: AgiSession) -> None:
        seen["value"] = await session.get_variable("GW_CALL_ID")
        seen["hung_up"] = session.hung_up

    router = Router()
    router.register("t", handler)
    server = await agi_server(router)
    env = FastAgiCall("127.0.0.1", server.bound_port, "t").env_block()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    writer.write(env + b"HANGUP\n")
    assert await reader.readline() == b"GET VARIABLE GW_CALL_ID\n"
    writer.write(b"200 result=1 (call-9)\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # done: the server closed
    writer.close()
    assert seen == {"value": "call-9", "hung_up": True}

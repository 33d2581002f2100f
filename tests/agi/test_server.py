"""AgiServer end to end over real sockets, with sim/fastagi playing Asterisk."""

from __future__ import annotations

import asyncio

from gateway.agi import AgiRequest, AgiServer, AgiSession, Router, set_decision
from sim.fastagi import FastAgiCall
from tests.agi.conftest import Logs, ServerFactory, until

CALLGATE_DENY_BAD_REQUEST = {
    "CALLGATE_RESULT": "DENY",
    "CALLGATE_REASON": "bad_request",
    "CALLGATE_CAUSE": "21",
    "CALLGATE_LEASE": "",
    "CALLGATE_MAXSEC": "0",
}


def _callgate(variables: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in variables.items() if k.startswith("CALLGATE_")}


def _call(server: AgiServer, script: str, *args: str, uniqueid: str = "1700000000.7",
          **kw: object) -> FastAgiCall:
    return FastAgiCall(
        "127.0.0.1",
        server.bound_port,
        script,
        {"agi_uniqueid": uniqueid, "agi_extension": "5551234", "agi_callerid": "6001"},
        {"GW_CALL_ID": "call-1"},
        args=args,
        **kw,  # type: ignore[arg-type]
    )


async def _allow(request: AgiRequest, session: AgiSession) -> None:
    seen = await session.get_variable("GW_CALL_ID")
    await session.set_variable("SEEN", f"{request.args['tenant']}|{seen}|{request.extension}")
    await set_decision(session, "ALLOW", "ok", 0, "lease-42", 3600)


def _router(**routes: object) -> Router:
    router = Router()
    for name, handler in routes.items():
        router.register(name, handler)  # type: ignore[arg-type]
    return router


async def _served_next_call(server: AgiServer) -> None:
    outcome = await _call(server, "authorize?tenant=acme").run()
    assert outcome.variables["CALLGATE_RESULT"] == "ALLOW"


async def test_route_sets_variables_the_channel_sees(agi_server: ServerFactory, logs: Logs) -> None:
    server = await agi_server(_router(authorize=_allow))

    outcome = await _call(server, "authorize?call=c1", "tenant=acme", "direction=out").run()

    assert outcome.status == "SUCCESS"
    assert outcome.variables["SEEN"] == "acme|call-1|5551234"
    assert _callgate(outcome.variables) == {
        "CALLGATE_RESULT": "ALLOW",
        "CALLGATE_REASON": "ok",
        "CALLGATE_CAUSE": "0",
        "CALLGATE_LEASE": "lease-42",
        "CALLGATE_MAXSEC": "3600",
    }
    # One round trip for the decision, CALLGATE_RESULT last within it.
    assert outcome.commands[-1] == (
        'EXEC MSet "CALLGATE_REASON=ok,CALLGATE_CAUSE=0,CALLGATE_LEASE=lease-42,'
        'CALLGATE_MAXSEC=3600,CALLGATE_RESULT=ALLOW"'
    )
    done = logs.events("agi_request_done")
    assert done and done[0]["call_id"] == "1700000000.7" and done[0]["route"] == "authorize"


async def test_handler_logs_carry_call_id_and_route(agi_server: ServerFactory, logs: Logs) -> None:
    async def chatty(request: AgiRequest, session: AgiSession) -> None:
        session.log.info("limit_checked")
        await set_decision(session, "ALLOW", "ok", 0, "L", 0)

    server = await agi_server(_router(authorize=chatty))
    await _call(server, "authorize?tenant=acme", uniqueid="99.1").run()
    (line,) = logs.events("limit_checked")
    assert (line["call_id"], line["route"]) == ("99.1", "authorize")


async def test_value_with_quotes_spaces_backslashes_arrives_unchanged(
    agi_server: ServerFactory,
) -> None:
    tricky = 'say "hi" \\ to C:\\dir\\ and\ttab  twice "" \\"'

    async def setter(request: AgiRequest, session: AgiSession) -> None:
        await session.set_variable("TRICKY", tricky)
        await session.set_variable("BROKEN", "line1\nHANGUP\nline2\r")
        assert await session.get_variable("TRICKY") == tricky

    server = await agi_server(_router(quote=setter))
    outcome = await _call(server, "quote").run()

    assert outcome.variables["TRICKY"] == tricky
    assert outcome.variables["BROKEN"] == "line1HANGUPline2"  # newlines stripped, no injection
    assert len(outcome.commands) == 3


async def test_unknown_route_is_denied_as_bad_request(
    agi_server: ServerFactory, logs: Logs
) -> None:
    server = await agi_server(_router(authorize=_allow))

    outcome = await _call(server, "authorise?tenant=acme", uniqueid="5.5").run()

    assert outcome.status == "SUCCESS"
    assert _callgate(outcome.variables) == CALLGATE_DENY_BAD_REQUEST
    (line,) = logs.events("agi_unknown_route")
    assert line["route"] == "authorise" and line["call_id"] == "5.5"
    assert line["known"] == ("authorize",)


async def test_bad_args_are_denied_with_the_reason_logged(
    agi_server: ServerFactory, logs: Logs
) -> None:
    server = await agi_server(_router(authorize=_allow))

    # the lab dialplan's positional style: AGI(agi://.../authorize?call=X,${EXTEN},...)
    outcome = await _call(server, "authorize?call=x", "100", "5551234", uniqueid="6.6").run()

    assert _callgate(outcome.variables) == CALLGATE_DENY_BAD_REQUEST
    (line,) = logs.events("agi_bad_request")
    assert line["call_id"] == "6.6"
    assert line["reason"] == "agi_arg_1 '100' is not key=value"


async def test_handler_error_denies_backend_unavailable(
    agi_server: ServerFactory, logs: Logs
) -> None:
    async def broken(request: AgiRequest, session: AgiSession) -> None:
        raise RuntimeError("redis exploded")

    server = await agi_server(_router(authorize=broken))
    outcome = await _call(server, "authorize").run()

    assert _callgate(outcome.variables) == {
        "CALLGATE_RESULT": "DENY",
        "CALLGATE_REASON": "backend_unavailable",
        "CALLGATE_CAUSE": "41",
        "CALLGATE_LEASE": "",
        "CALLGATE_MAXSEC": "0",
    }
    (line,) = logs.events("agi_handler_failed")
    assert "redis exploded" in line["error"]
    await _served_next_call_with(server, agi_server)


async def _served_next_call_with(server: AgiServer, agi_server: ServerFactory) -> None:
    other = await agi_server(_router(authorize=_allow))
    await _served_next_call(other)
    assert server.active_connections == 0


async def test_decision_made_before_an_error_stands(agi_server: ServerFactory, logs: Logs) -> None:
    async def late_failure(request: AgiRequest, session: AgiSession) -> None:
        await set_decision(session, "ALLOW", "surcharge", 0, "lease-7", 60)
        raise RuntimeError("metrics down")

    server = await agi_server(_router(authorize=late_failure))
    outcome = await _call(server, "authorize").run()

    assert outcome.variables["CALLGATE_RESULT"] == "ALLOW"
    assert outcome.variables["CALLGATE_LEASE"] == "lease-7"
    assert logs.events("agi_handler_failed")


async def test_handler_over_its_time_is_denied(agi_server: ServerFactory, logs: Logs) -> None:
    async def stuck(request: AgiRequest, session: AgiSession) -> None:
        await asyncio.Event().wait()

    router = Router()
    router.register("authorize", stuck, timeout=0.2)
    server = await agi_server(router)

    outcome = await _call(server, "authorize").run()

    assert outcome.variables["CALLGATE_REASON"] == "backend_unavailable"
    assert logs.events("agi_handler_timeout")[0]["timeout"] == 0.2


async def _raw_peer(server: AgiServer, data: bytes, *, close: bool = True) -> bytes:
    """Send raw bytes; return what the server answered before closing (b"" if nothing)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    try:
        writer.write(data)
        await writer.drain()
        if close:
            writer.write_eof()
        async with asyncio.timeout(5):
            return await reader.read()
    except ConnectionResetError:
        return b""  # closed while we were still sending: the kernel answers with RST
    finally:
        writer.close()


async def test_garbage_is_closed_and_the_server_keeps_serving(
    agi_server: ServerFactory, logs: Logs
) -> None:
    server = await agi_server(_router(authorize=_allow))

    tls_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\n"
    answer = await _raw_peer(server, tls_hello, close=False)

    assert answer == b""  # closed without a word: this is no Asterisk
    (line,) = logs.events("agi_garbage_closed")
    assert "env line 1 is not 'agi_key: value'" in line["reason"]
    await _served_next_call(server)


async def test_peer_that_connects_and_closes(agi_server: ServerFactory, logs: Logs) -> None:
    server = await agi_server(_router(authorize=_allow))
    _, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    writer.close()
    await writer.wait_closed()

    await _served_next_call(server)
    assert "connection closed before the end of the env block" in (
        logs.events("agi_garbage_closed")[0]["reason"]
    )


async def test_one_megabyte_line(agi_server: ServerFactory, logs: Logs) -> None:
    server = await agi_server(_router(authorize=_allow))

    answer = await _raw_peer(server, b"agi_network: yes\nagi_arg_1: " + b"x" * (1 << 20) + b"\n")

    assert answer == b""
    assert logs.events("agi_garbage_closed")
    await _served_next_call(server)


async def test_silent_peer_is_dropped_after_request_timeout(
    agi_server: ServerFactory, logs: Logs
) -> None:
    server = await agi_server(_router(authorize=_allow), request_timeout=0.2)
    answer = await _raw_peer(server, b"agi_network: yes\n", close=False)
    assert answer == b""
    assert "no complete env block within 0.2s" in logs.events("agi_garbage_closed")[0]["reason"]


async def test_env_block_split_over_reads(agi_server: ServerFactory) -> None:
    server = await agi_server(_router(authorize=_allow))
    call = _call(server, "authorize?tenant=acme", env_split_at=range(1, 700, 37))
    outcome = await call.run()
    assert outcome.variables["CALLGATE_RESULT"] == "ALLOW"


async def test_connection_cap_answers_the_extra_call_and_others_proceed(
    agi_server: ServerFactory, logs: Logs
) -> None:
    release = asyncio.Event()
    entered = 0

    async def slow(request: AgiRequest, session: AgiSession) -> None:
        nonlocal entered
        entered += 1
        await release.wait()
        await set_decision(session, "ALLOW", "ok", 0, f"lease-{request.call_id}", 0)

    server = await agi_server(_router(authorize=slow), max_connections=2)
    held = [
        asyncio.create_task(_call(server, "authorize", uniqueid=f"h.{i}").run()) for i in range(2)
    ]
    await until(lambda: entered == 2)

    async with asyncio.timeout(5):  # answered at once, while the cap is still full
        over = await _call(server, "authorize", uniqueid="over.1").run()

    assert over.status == "SUCCESS"
    assert _callgate(over.variables) == {
        "CALLGATE_RESULT": "DENY",
        "CALLGATE_REASON": "backend_unavailable",
        "CALLGATE_CAUSE": "34",
        "CALLGATE_LEASE": "",
        "CALLGATE_MAXSEC": "0",
    }
    (line,) = logs.events("agi_connection_cap_reached")
    assert (line["action"], line["call_id"], line["limit"]) == ("denied", "over.1", 2)

    release.set()
    outcomes = await asyncio.gather(*held)
    assert [o.variables["CALLGATE_LEASE"] for o in outcomes] == ["lease-h.0", "lease-h.1"]
    await _served_next_call_after_cap(server)


async def _served_next_call_after_cap(server: AgiServer) -> None:
    outcome = await _call(server, "authorize").run()
    assert outcome.variables["CALLGATE_RESULT"] == "ALLOW"


async def test_far_over_cap_is_closed_with_a_log_line(
    agi_server: ServerFactory, logs: Logs
) -> None:
    release = asyncio.Event()

    async def slow(request: AgiRequest, session: AgiSession) -> None:
        await release.wait()

    server = await agi_server(_router(authorize=slow), max_connections=1, request_timeout=5)
    held = asyncio.create_task(_call(server, "authorize").run())
    await until(lambda: server.active_connections == 1)
    # a second connection that never sends its env block occupies the overflow slot
    _, idle_writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    await until(lambda: server.active_connections == 2)

    dropped = await _call(server, "authorize").run()

    assert dropped.status == "SUCCESS" and "CALLGATE_RESULT" not in dropped.variables
    assert [e["action"] for e in logs.events("agi_connection_cap_reached")] == ["closed"]
    idle_writer.close()
    release.set()
    await held


async def test_stop_accepting_lets_the_request_in_flight_finish(
    agi_server: ServerFactory, logs: Logs
) -> None:
    release = asyncio.Event()

    async def slow(request: AgiRequest, session: AgiSession) -> None:
        await release.wait()
        await set_decision(session, "ALLOW", "ok", 0, "lease-late", 0)

    server = await agi_server(_router(authorize=slow))
    in_flight = asyncio.create_task(_call(server, "authorize").run())
    await until(lambda: server.active_connections == 1)

    server.stop_accepting()
    refused = await _call(server, "authorize").run()
    assert refused.status == "FAILURE"  # Asterisk's AGISTATUS when nobody listens
    assert await server.wait_idle(0.1) is False

    release.set()
    assert await server.wait_idle(5) is True
    outcome = await in_flight
    assert outcome.variables["CALLGATE_LEASE"] == "lease-late"


async def test_close_cancels_what_is_still_running(agi_server: ServerFactory, logs: Logs) -> None:
    async def forever(request: AgiRequest, session: AgiSession) -> None:
        await asyncio.Event().wait()

    server = await agi_server(_router(authorize=forever))
    call = asyncio.create_task(_call(server, "authorize").run())
    await until(lambda: server.active_connections == 1)

    await server.close()

    outcome = await call
    assert outcome.status == "SUCCESS" and "CALLGATE_RESULT" not in outcome.variables
    assert logs.events("agi_connections_cancelled")[0]["count"] == 1


async def test_decision_falls_back_to_set_variable_without_mset(agi_server: ServerFactory) -> None:
    """An Asterisk with no MSet application (EXEC answers -2) still gets the decision."""
    server = await agi_server(_router(authorize=_allow))
    outcome = await _call(server, "authorize?tenant=acme", app_results={"MSet": -2}).run()
    assert outcome.variables["CALLGATE_RESULT"] == "ALLOW"
    assert outcome.variables["CALLGATE_LEASE"] == "lease-42"
    assert outcome.commands[-1] == 'SET VARIABLE CALLGATE_RESULT "ALLOW"'


async def test_values_mset_would_mangle_are_set_one_by_one(agi_server: ServerFactory) -> None:
    async def tricky(request: AgiRequest, session: AgiSession) -> None:
        await session.set_variables([("A", 'x,y="z"'), ("B", "plain")])

    server = await agi_server(_router(authorize=tricky))
    outcome = await _call(server, "authorize?tenant=acme").run()
    assert outcome.variables["A"] == 'x,y="z"' and outcome.variables["B"] == "plain"
    assert not any(c.startswith("EXEC MSet") for c in outcome.commands)

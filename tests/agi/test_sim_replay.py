"""sim/fastagi answers like the recorded Asterisk: replay the server's side of each recording
into a FastAgiCall over a real socket and compare every byte the sim sends back."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from sim.fastagi import ENV_KEYS, FastAgiCall
from tests.agi.recordings import (
    AGI_TIMELINES,
    Exchange,
    agistatus,
    env_mapping,
    exchanges,
    timeline,
)


def _initial_variables(found: list[Exchange]) -> dict[str, str]:
    """Channel variables as the dialplan had set them: what GET VARIABLE read before any SET."""
    variables: dict[str, str] = {}
    written: set[str] = set()
    for x in found:
        cmd = x.command.decode().split()
        if cmd[:2] == ["SET", "VARIABLE"] and len(cmd) > 2:
            written.add(cmd[2])
        got = re.fullmatch(rb"(?:HANGUP\n)?200 result=1 \((.*)\)\n", x.reply)
        if cmd[:2] == ["GET", "VARIABLE"] and got and cmd[2] not in written:
            variables.setdefault(cmd[2], got.group(1).decode())
    return variables


async def _replay(path: Path) -> tuple[bytes, list[bytes], str, FastAgiCall]:
    env_bytes, found = exchanges(timeline(path))
    env = env_mapping(env_bytes)
    call_box: list[FastAgiCall] = []
    received: list[bytes] = []
    env_received = asyncio.get_running_loop().create_future()

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env_received.set_result(await reader.readuntil(b"\n\n"))
        call = call_box[0]
        for x in found:
            if x.reply.startswith(b"HANGUP\n") and not call.dead:
                call.hangup()  # e2: the channel was hung up over AMI while AGI() sat idle
            writer.write(x.command)
            await writer.drain()
            received.append(await reader.readexactly(len(x.reply)))
        writer.close()

    srv = await asyncio.start_server(server, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    args = [env[k] for k in sorted(env) if k.startswith("agi_arg_")]
    overrides = {k: env[k] for k in ENV_KEYS}
    call = FastAgiCall(
        "127.0.0.1",
        port,
        env["agi_network_script"],
        overrides,
        _initial_variables(found),
        args=args,
        env_split_at=[len(c.data) for c in timeline(path)[:1]],
    )
    call_box.append(call)
    async with asyncio.timeout(10):
        outcome = await call.run()
    srv.close()
    await srv.wait_closed()
    return await env_received, received, outcome.status, call


@pytest.mark.parametrize("path", AGI_TIMELINES, ids=lambda p: p.name.split(".")[0])
async def test_sim_answers_byte_for_byte_like_asterisk(path: Path) -> None:
    env_bytes, found = exchanges(timeline(path))

    sent_env, replies, status, _ = await _replay(path)

    assert sent_env == env_bytes
    for x, reply in zip(found, replies, strict=True):
        assert reply == x.reply, x.command
    ami = path.with_name(path.name.replace(".agi.timeline.txt", ".ami.rx.txt"))
    assert status == agistatus(ami)


async def test_sim_keeps_what_the_server_set(asterisk_fixtures: Path) -> None:
    path = asterisk_fixtures / "c6-originate-agi-denied-hangup.agi.timeline.txt"
    _, _, _, call = await _replay(path)
    assert call.variables["GW_AUTH"] == "DENIED"
    assert call.variables["AFTER_HANGUP"] == "1"  # SET VARIABLE still works on a dead channel
    assert call.variables["AGISTATUS"] == "HANGUP"


async def test_whole_rx_file_matches_for_b1(asterisk_fixtures: Path) -> None:
    """Same check against the .agi.rx.txt capture (the server-side socket's own record)."""
    from tests.agi.recordings import payload

    sent_env, replies, _, _ = await _replay(
        asterisk_fixtures / "b1-originate-answer-5s-talk.agi.timeline.txt"
    )
    recorded = payload(asterisk_fixtures / "b1-originate-answer-5s-talk.agi.rx.txt")
    assert sent_env + b"".join(replies) == recorded


async def test_subclass_overrides_are_used() -> None:
    """sim/agi_link.py hooks AMI events onto FastAgiCall by overriding its command methods."""
    seen: list[str] = []

    class Observed(FastAgiCall):
        def _setvar(self, name: str, value: str) -> None:
            super()._setvar(name, value)
            seen.append(f"set {name}")

        def _hangup(self, argv: list[str]) -> bytes:
            seen.append("hangup")
            return super()._hangup(argv)

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\n\n")
        for command in (b"SET VARIABLE A 1\n", b"HANGUP\n"):
            writer.write(command)
            await reader.readline()
        writer.close()

    srv = await asyncio.start_server(server, "127.0.0.1", 0)
    outcome = await Observed("127.0.0.1", srv.sockets[0].getsockname()[1], "t").run()
    srv.close()
    assert seen == ["set A", "hangup"]
    assert outcome.status == "HANGUP"

"""AMI behaviour outside the recordings: framing edge cases, event masks, synchronous and
unroutable Originate, the recordings' deny path without an AGI HANGUP, an unreachable
gateway, and `python -m sim` as a standalone process."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from sim.ami_codec import MessageReader, encode
from sim.dialplan import RECORDING_AGI, ContextConfig
from tests.sim.agi_server import TinyAgiServer
from tests.sim.conftest import SimFactory
from tests.sim.replay import AmiClient

LOGIN = b"Action: Login\r\nUsername: gateway\r\nSecret: gateway\r\n\r\n"


def test_encode_keeps_the_trailing_space_of_empty_values() -> None:
    assert encode([("Response", "Success"), ("Value", "")]) == (
        b"Response: Success\r\nValue: \r\n\r\n"
    )


def test_reader_reassembles_split_messages_and_bare_lf() -> None:
    reader = MessageReader()
    assert reader.feed(b"Action: Pi") == []
    assert reader.feed(b"ng\r\nActionID: 1\r") == []
    first = reader.feed(b"\n\r\nAction: Logoff\n\n")
    assert [m.get("Action") for m in first] == ["Ping", "Logoff"]
    assert first[0].get("actionid") == "1"


async def _client(port: int) -> AmiClient:
    client = await AmiClient.connect(port)
    client.send(LOGIN)
    await client.wait_for(lambda f: f[0] == ("Event", "FullyBooted"))
    return client


async def test_events_off_stops_the_stream_but_not_replies(make_sim: SimFactory) -> None:
    sim = await make_sim()
    client = await _client(sim.ami_port)
    try:
        client.send(b"Action: Events\r\nActionID: e\r\nEventMask: off\r\n\r\n")
        await client.wait_for(lambda f: dict(f).get("ActionID") == "e")
        mark = len(client.frames)
        client.send(b"Action: Setvar\r\nActionID: s\r\nVariable: X\r\nValue: 1\r\n\r\n")
        client.send(b"Action: Ping\r\nActionID: p\r\n\r\n")
        await client.wait_for(lambda f: dict(f).get("ActionID") == "p")
        assert [f[0][0] for f in client.frames[mark:]] == ["Response", "Response"]
    finally:
        await client.close()


async def test_garbage_gets_an_error_and_the_session_survives(make_sim: SimFactory) -> None:
    sim = await make_sim()
    client = await _client(sim.ami_port)
    try:
        client.send(b"no colon here\r\n\r\n\xff\xfe: \r\n\r\nAction: Ping\r\nActionID: p\r\n\r\n")
        pong = await client.wait_for(lambda f: dict(f).get("ActionID") == "p")
        assert dict(pong)["Ping"] == "Pong"
        errors = [dict(f) for f in client.frames if dict(f).get("Response") == "Error"]
        assert [e["Message"] for e in errors] == ["Missing action in request"] * 2
    finally:
        await client.close()


async def test_sync_originate_of_an_unknown_channel_fails(make_sim: SimFactory) -> None:
    sim = await make_sim()
    client = await _client(sim.ami_port)
    try:
        client.send(
            b"Action: Originate\r\nActionID: o\r\nChannel: Local/1@nowhere\r\n"
            b"Context: x\r\nExten: s\r\n\r\n"
        )
        reply = await client.wait_for(lambda f: dict(f).get("ActionID") == "o")
        assert dict(reply) == {"Response": "Error", "ActionID": "o", "Message": "Originate failed"}
        assert not [f for f in client.frames if f[0] == ("Event", "OriginateResponse")]
    finally:
        await client.close()


async def test_gw_auth_not_ok_takes_the_denied_branch(make_sim: SimFactory) -> None:
    sim = await make_sim()
    async with TinyAgiServer(lambda env: ["SET VARIABLE GW_AUTH DENIED"]) as agi:
        url = RECORDING_AGI.replace("127.0.0.1:4573", f"127.0.0.1:{agi.port}")
        sim.add_context(ContextConfig("gw-out", "recording", url))
        client = await _client(sim.ami_port)
        try:
            client.send(
                b"Action: Originate\r\nActionID: o\r\nChannel: Local/999@gw-out\r\n"
                b"Context: sim-caller\r\nExten: s\r\nAsync: true\r\n\r\n"
            )
            resp = await client.wait_for(lambda f: f[0] == ("Event", "OriginateResponse"))
            await client.wait_for(
                lambda f: f[0] == ("Event", "Hangup") and dict(f)["Channel"].endswith(";1")
            )
        finally:
            await client.close()
    assert dict(resp)["Response"] == "Failure"
    assert dict(resp)["Uniqueid"] == "<unknown>"
    apps = [
        (dict(f)["Application"], dict(f)["AppData"])
        for f in client.frames
        if f[0] == ("Event", "Newexten") and dict(f)["Channel"].endswith(";2")
    ]
    assert apps[-2:] == [("GotoIf", "1?denied"), ("Hangup", "21")]
    hangups = {
        dict(f)["Channel"][-2:]: dict(f) for f in client.frames if f[0] == ("Event", "Hangup")
    }
    assert hangups[";2"]["Cause"] == hangups[";1"]["Cause"] == "21"
    assert hangups[";2"]["Cause-txt"] == "Call Rejected"


async def test_unreachable_gateway_gives_agistatus_failure(make_sim: SimFactory) -> None:
    sim = await make_sim()
    sim.add_context(ContextConfig("callgate-out", agi="agi://127.0.0.1:1/authorize"))
    seen: list[dict[str, str]] = []
    sim.world.subscribe(lambda f: seen.append(dict(f)))
    call = sim.place_call("4915199999", context="callgate-out")
    await asyncio.wait_for(call.ended.wait(), 5)
    status = [e["Value"] for e in seen if e.get("Variable") == "AGISTATUS"]
    assert status == ["FAILURE"]
    assert [e["Cause"] for e in seen if e["Event"] == "Hangup"] == ["21"]


async def test_python_dash_m_sim_serves_ami() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sim",
        "--ami-port",
        "0",
        "--speed",
        "10",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        port = json.loads(line)["ami_port"]
        client = await _client(port)
        try:
            client.send(b"Action: CoreSettings\r\nActionID: c\r\n\r\n")
            settings = await client.wait_for(lambda f: dict(f).get("ActionID") == "c")
            assert dict(settings)["AsteriskVersion"] == "22.10.1"
        finally:
            await client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0

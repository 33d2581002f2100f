"""The simulator against every AMI recording of the real Asterisk 22: the recording's client
bytes are replayed over a real socket (and its FastAGI server side, when there is one), and
the simulator's replies are compared frame by frame after normalising ids and times."""

from __future__ import annotations

import asyncio

import pytest

from sim.dialplan import RECORDING_AGI, ContextConfig
from tests.agi.recordings import env_block
from tests.sim.conftest import SPEED, SimFactory
from tests.sim.recorded import FIXTURES, ami_script, compare, normalise_env
from tests.sim.replay import AgiReplayServer, AmiClient, replay_ami

REPLAYED = [
    "a1-basic-actions",
    "a2-login-failed",
    "a3-actions-before-login",
    "a4-queries-during-bridged-call",
    "b1-originate-answer-5s-talk",
    "b2-originate-answer-channelid",
    "c1-originate-noanswer-dial-timeout",
    "c2-originate-noanswer-originate-timeout",
    "c3-originate-busy",
    "c4-originate-busy-channelid",
    "c5-originate-congestion",
    "c6-originate-agi-denied-hangup",
    "d1-hangup-action-midcall",
    "d2-absolute-timeout-midcall",
    "e2-hangup-during-agi",
    "f1-dial-limit-warning",
    "g1-periodic-hook-via-ami-blocked",
    "g2-periodic-hook-via-ami-live-dangerously",
    "g3-chanspy-barge-prompt-both",
    "g4-chanspy-whisper-prompt-caller-only",
    "g5-chanspy-whisper-prompt-callee-only",
    "h3-sip-originate-phone-to-gw-out",
]
# No AMI client sends what Asterisk reacted to (SIP phones did): driven through the Python API.
DRIVEN_BY_API = {"h1-sip-register-contactstatus", "h2-sip-call-6001-to-6002"}
# Recordings whose global event order (leaving out DeviceStateChange, Cdr and
# OriginateResponse, which other Asterisk threads emit) the simulator reproduces exactly.
# The others are recordings of the same flows with a different thread interleaving.
EXACT_ORDER = {
    "a1-basic-actions",
    "a2-login-failed",
    "a3-actions-before-login",
    "b1-originate-answer-5s-talk",
    "c1-originate-noanswer-dial-timeout",
    "c3-originate-busy",
    "c4-originate-busy-channelid",
    "e2-hangup-during-agi",
}


def test_every_recording_has_a_replay() -> None:
    recorded = {p.name.split(".")[0] for p in FIXTURES.glob("*.ami.timeline.txt")}
    assert recorded == set(REPLAYED) | DRIVEN_BY_API


@pytest.mark.parametrize("name", REPLAYED)
async def test_replay_matches_recording(make_sim: SimFactory, name: str) -> None:
    ami = FIXTURES / f"{name}.ami.timeline.txt"
    agi = FIXTURES / f"{name}.agi.timeline.txt"
    # Preconditions of a1: a previous run had set the global and processed 3 calls.
    sim = await make_sim(
        globals={"GLOBAL_TEST": "hello world"},
        live_dangerously=name.startswith("g2-"),  # asterisk.conf of g2 only
    )
    sim.world.processed_calls = 3
    if name.startswith("h3-"):
        sim.register_phone("6002", port=5062)  # sipp's UAS, registered before the recording
    server: AgiReplayServer | None = None
    if agi.exists():
        server = AgiReplayServer(agi, SPEED)
        await server.start()
        url = RECORDING_AGI.replace("127.0.0.1:4573", f"127.0.0.1:{server.port}")
        sim.add_context(ContextConfig("gw-out", "recording", url))
    try:
        run = await replay_ami(sim, ami, SPEED)
    finally:
        if server is not None:
            await server.stop()
    _, recorded, _ = ami_script(ami)
    assert run.banner == b"Asterisk Call Manager/11.0.0\r\n"
    problems = compare(recorded, run.frames, exact_order=name in EXACT_ORDER)
    assert not problems, "\n".join(problems)
    if server is not None:  # the dialplan's AGI() sent the recorded env block
        want = env_block(FIXTURES / f"{name}.agi.rx.txt")
        assert server.received, "no FastAGI connection"
        assert normalise_env(server.received[0], run.frames) == normalise_env(want, recorded)


async def test_h1_registrations_match_recording(make_sim: SimFactory) -> None:
    """h1: REGISTER / unregister / wrong password, driven through the Python API."""
    path = FIXTURES / "h1-sip-register-contactstatus.ami.timeline.txt"
    steps, recorded, _ = ami_script(path)
    sim = await make_sim()
    sim.phones.preload_contact("6002", port=5062)  # stale contact from before the recording
    client = await AmiClient.connect(sim.ami_port)
    try:
        client.send(steps[0].data)  # Login
        await client.wait_frames(3)
        assert sim.unregister_phone("6002", port=5062)
        assert sim.register_phone("6001", port=5061)
        assert sim.register_phone("6002", port=5062)
        client.send(steps[1].data)  # PJSIPShowContacts
        client.send(steps[2].data)  # PJSIPShowEndpoints
        await client.wait_for(lambda f: f[0] == ("Event", "EndpointListComplete"))
        assert sim.unregister_phone("6001", port=5061)
        assert not sim.register_phone("6001", port=5061, password="wrong")
        assert sim.register_phone("6001", port=5061)
        client.send(steps[3].data)  # Logoff
        await client.wait_closed()
    finally:
        await client.close()
    problems = compare(recorded, client.frames, exact_order=False)
    assert not problems, "\n".join(problems)


async def test_h2_phone_call_matches_recording(make_sim: SimFactory) -> None:
    """h2: phone 6001 calls 6002, talk 4 s, 6001 hangs up."""
    path = FIXTURES / "h2-sip-call-6001-to-6002.ami.timeline.txt"
    steps, recorded, _ = ami_script(path)
    sim = await make_sim()
    sim.register_phone("6001")
    sim.register_phone("6002")
    client = await AmiClient.connect(sim.ami_port)
    try:
        client.send(steps[0].data)
        await client.wait_frames(3)
        call = sim.phone_call("6001", "6002", talk=4)
        await asyncio.wait_for(call.ended.wait(), 5)
        client.send(steps[1].data)
        await client.wait_closed()
    finally:
        await client.close()
    problems = compare(recorded, client.frames, exact_order=True)
    assert not problems, "\n".join(problems)

"""The benchmark driver sends what FastAGI's own client sends, byte for byte, and feeds
each channel's next AGI() with the outcome of the one before."""

from __future__ import annotations

import asyncio
import socket
import threading

from sim.agi_blast import AgiBlast, Flow
from sim.fastagi import FastAgiCall, FastAgiOutcome


class _Server:
    """An AGI server in its own thread: SET VARIABLE, a 520 usage error, EXEC MSet, close."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.received: list[bytes] = []
        ready = threading.Event()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            env = await reader.readuntil(b"\n\n")
            lease = env.split(b"agi_arg_1: ")[1].split(b"\n")[0] if b"agi_arg_1" in env \
                else b"none"
            got = env
            for cmd in (b"SET VARIABLE LEASE " + lease + b"\n", b"SET VARIABLE\n",
                        b'EXEC MSet "A=1,B=2"\n'):
                writer.write(cmd)
                reply = await reader.readline()
                while reply.startswith(b"520-") or reply == b"Usage: SET VARIABLE\n" or \
                        not reply[:3].isdigit():
                    got += reply
                    reply = await reader.readline()
                got += reply
            self.received.append(got)
            writer.close()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                asyncio.start_server(serve, "127.0.0.1", 0))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        ready.wait(5)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_flows_chain_their_runs_and_every_run_is_answered_like_fastagi() -> None:
    server = _Server()
    outcomes: list[FastAgiOutcome] = []
    try:
        def flow(i: int) -> Flow:
            first = yield FastAgiCall("127.0.0.1", server.port, "authorize",
                                      {"agi_uniqueid": f"17.{i}"}, args=(f"L{i}",))
            outcomes.append(first)
            second = yield FastAgiCall("127.0.0.1", server.port, "release",
                                       {"agi_uniqueid": f"17.{i}"},
                                       args=(first.variables["LEASE"] + "x",))
            outcomes.append(second)

        blast = AgiBlast()
        report = blast.run(iter([flow(i) for i in range(40)]), 7)
        blast.close()
    finally:
        server.stop()
    assert (report.runs, report.failures) == (80, 0)
    assert len(report.latencies["authorize"]) == len(report.latencies["release"]) == 40
    releases = sorted(o.variables["LEASE"] for o in outcomes if o.variables["LEASE"][-1] == "x")
    assert releases == sorted(f"L{i}x" for i in range(40))
    for o in outcomes:
        assert (o.status, o.variables["A"], o.variables["B"]) == ("SUCCESS", "1", "2")
        # the 520 usage reply is the multi-line one Asterisk sends
        assert any(part.startswith(b"520-Invalid command syntax") for _, part in o.transcript)


def test_the_same_bytes_as_fastagi_call_run() -> None:
    """The transcript (env block, commands, replies) of a blast run equals FastAgiCall.run's
    for the same channel."""
    server = _Server()
    try:
        env = {"agi_uniqueid": "1700000000.1", "agi_channel": "Local/s@default-00000001;2",
               "agi_threadid": "140000000000001"}
        got: list[FastAgiOutcome] = []

        def flow() -> Flow:
            got.append((yield FastAgiCall("127.0.0.1", server.port, "t", env, args=("a",))))

        blast = AgiBlast()
        blast.run(iter([flow()]), 1)
        blast.close()
        reference = asyncio.run(FastAgiCall("127.0.0.1", server.port, "t", env,
                                            args=("a",)).run())
    finally:
        server.stop()
    assert got[0].transcript == reference.transcript
    assert got[0].variables == reference.variables
    assert server.received[0] == server.received[1]


def test_a_server_that_is_not_there_counts_as_failed_runs() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there

    def flow() -> Flow:
        outcome = yield FastAgiCall("127.0.0.1", port, "authorize")
        assert outcome.status == "FAILURE"

    blast = AgiBlast()
    report = blast.run(iter([flow() for _ in range(3)]), 2)
    blast.close()
    assert (report.runs, report.failures) == (3, 3)


class _RecordingSocket:
    """Takes at most `room` bytes per send, like a socket whose buffer is nearly full."""

    def __init__(self, room: int = 1 << 20) -> None:
        self.sends: list[bytes] = []
        self.room = room

    def send(self, data: bytes) -> int:
        taken = data[: self.room]
        self.sends.append(taken)
        return len(taken)


def test_the_env_block_goes_out_one_write_per_line_as_res_agi_writes_it() -> None:
    """launch_netscript and setup_env call ast_agi_send once per line, so a server reads a
    real Asterisk's block in many pieces; the driver must make it do the same work."""
    call = FastAgiCall("127.0.0.1", 1, "authorize", {"agi_uniqueid": "1.1"}, args=("a=1",))
    block = call.env_block()
    blast = AgiBlast()
    try:
        blast._start(_flow_of(call), call)
        (run,) = blast._runs.values()
        run.sock.close()
        recorder = _RecordingSocket()
        run.sock = recorder  # type: ignore[assignment]
        assert run.flush() is True
    finally:
        blast._runs.clear()
        blast.close()
    assert recorder.sends == block.splitlines(keepends=True)
    assert recorder.sends[0] == b"agi_network: yes\n" and recorder.sends[-1] == b"\n"
    assert len(recorder.sends) == block.count(b"\n")


def test_a_partial_send_keeps_the_rest_for_the_next_writable_event() -> None:
    call = FastAgiCall("127.0.0.1", 1, "authorize", {"agi_uniqueid": "1.1"})
    blast = AgiBlast(line_writes=False)
    try:
        blast._start(_flow_of(call), call)
        (run,) = blast._runs.values()
        run.sock.close()
        recorder = _RecordingSocket(room=100)
        run.sock = recorder  # type: ignore[assignment]
        assert run.flush() is False  # the socket took 100 bytes
        recorder.room = 1 << 20
        assert run.flush() is True
    finally:
        blast._runs.clear()
        blast.close()
    assert b"".join(recorder.sends) == call.env_block()
    assert [len(s) for s in recorder.sends] == [100, len(call.env_block()) - 100]


def _flow_of(call: FastAgiCall) -> Flow:
    yield call

"""Replays a recording's client side (AMI and, when recorded, the FastAGI server side)
against a running simulator over real sockets, and collects what the simulator sent."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from sim.simulator import AsteriskSim
from tests.sim.recorded import Frame, agi_script, ami_script, split_frames

FRAME_TIMEOUT = 10.0  # real seconds to wait for an expected frame
QUIET = 1.5  # real seconds of silence after which a replay stops waiting for more frames


@dataclass
class Run:
    banner: bytes
    frames: list[Frame]
    closed: bool


class AgiReplayServer:
    """A FastAGI server that sends a recording's commands with its pauses (scaled)."""

    def __init__(self, path: Path, speed: float) -> None:
        self.steps, self.close_delay = agi_script(path)
        self.speed = speed
        self.server: asyncio.Server | None = None
        self.port = 0
        self.received: list[bytes] = []
        self.done = asyncio.Event()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            self.received.append(await reader.readuntil(b"\n\n"))
            for step in self.steps:
                await asyncio.sleep(step.delay / self.speed)
                writer.write(step.command)
                await writer.drain()
                self.received.append(await _read_reply(reader))
            await asyncio.sleep(self.close_delay / self.speed)
        finally:
            writer.close()
            self.done.set()


async def _read_reply(reader: asyncio.StreamReader) -> bytes:
    """One AGI reply: up to a line `NNN ...` (a HANGUP line or 520- lines come before)."""
    out = b""
    while True:
        line = await reader.readline()
        if not line:
            return out
        out += line
        if len(line) >= 4 and line[:3].isdigit() and line[3:4] == b" ":
            return out


class AmiClient:
    """Raw AMI socket: sends bytes, collects complete frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = b""
        self.banner = b""
        self.frames: list[Frame] = []
        self.closed = False
        self._more = asyncio.Event()
        self._closed = asyncio.Event()
        self._task = asyncio.ensure_future(self._pump())

    @staticmethod
    async def connect(port: int) -> AmiClient:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        return AmiClient(r, w)

    async def _pump(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self.buf += data
                banner, frames, rest = split_frames(self.buf)
                if banner:
                    self.banner = banner
                self.buf = rest
                self.frames.extend(frames)
                self._more.set()
        except ConnectionError:
            pass
        finally:
            self.closed = True
            self._more.set()
            self._closed.set()

    async def wait_frames(self, n: int, quiet: float = QUIET) -> None:
        """Until `n` frames arrived, or nothing arrived for `quiet` seconds (so a sim that
        sends fewer frames than the recording shows up as a diff, not as a hang)."""
        while len(self.frames) < n and not self.closed:
            self._more.clear()
            try:
                await asyncio.wait_for(self._more.wait(), quiet)
            except TimeoutError:
                return

    async def wait_for(self, pred: object, timeout: float = FRAME_TIMEOUT) -> Frame:
        assert callable(pred)
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                for f in self.frames[seen:]:
                    if pred(f):
                        return f
                seen = len(self.frames)
                if self.closed:
                    raise ConnectionError("AMI closed")
                self._more.clear()
                await self._more.wait()

    def send(self, data: bytes) -> bool:
        if self.closed or self.writer.is_closing():
            return False
        try:
            self.writer.write(data)
        except ConnectionError:
            return False
        return True

    async def wait_closed(self, timeout: float = FRAME_TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            await self._closed.wait()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self._closed.wait()


async def replay_ami(sim: AsteriskSim, path: Path, speed: float) -> Run:
    """Send the recording's TX chunks in order; each waits for as many frames as Asterisk
    had sent before it, then for the recorded pause (scaled)."""
    steps, recorded, _end = ami_script(path)
    expect_close = b"connection closed by Asterisk" in path.read_bytes()  # noqa: ASYNC240
    recorded_names = _channel_names(recorded)
    client = await AmiClient.connect(sim.ami_port)
    for step in steps:
        with contextlib.suppress(TimeoutError):
            await client.wait_frames(step.frames_before)
        await asyncio.sleep(step.gap / speed)
        data = _rename(step.data, recorded_names, _channel_names(client.frames))
        if not client.send(data):
            break
    with contextlib.suppress(TimeoutError):
        await client.wait_frames(len(recorded))
    if expect_close:
        with contextlib.suppress(TimeoutError):
            await client.wait_closed(timeout=3.0)
    await client.close()
    return Run(client.banner, client.frames, client.closed)


def _channel_names(frames: list[Frame]) -> list[str]:
    return [dict(f)["Channel"] for f in frames if dict(f).get("Event") == "Newchannel"]


def _rename(data: bytes, recorded: list[str], sim: list[str]) -> bytes:
    """The recording's channel names (their counters) -> the sim's, by creation order."""
    text = data.decode()
    pairs = sorted(zip(recorded, sim, strict=False), key=lambda p: -len(p[0]))
    marks = {}
    for i, (rec, new) in enumerate(pairs):
        token = f"\x00{i}\x00"
        text = text.replace(rec, token)
        marks[token] = new
    for token, new in marks.items():
        text = text.replace(token, new)
    return text.encode()

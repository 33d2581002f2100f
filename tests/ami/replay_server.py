"""A tiny AMI server on 127.0.0.1 that answers with the bytes a real Asterisk 22 sent.

Replies are taken from the timeline recordings: every TX action is paired with the RX
bytes that followed it, and the recorded ActionID is swapped for the client's. Knobs let
a test refuse the login (Asterisk's delayed `Authentication failed` and close), stop
answering Pings (a half-open peer), hold actions unanswered, answer Command the
pre-Asterisk-14 `Response: Follows` way, push raw bytes and drop connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ami.frames import FrameParser, Message
from tests.ami.recordings import recording, timeline


@dataclass(frozen=True)
class Reply:
    recorded_action_id: str
    data: bytes

    def for_action(self, action_id: str) -> bytes:
        old = f"ActionID: {self.recorded_action_id}\r\n".encode()
        new = f"ActionID: {action_id}\r\n".encode()
        return self.data.replace(old, new)


def reply_key(action: Message) -> str:
    name = (action.get("Action") or "").lower()
    if name == "command":
        return f"command:{action.get('Command')}"
    if name == "status" and action.get("Channel"):
        return "status:channel"
    if name == "getvar":
        return f"getvar:{action.get('Variable')}"
    if name == "hangup":
        return f"hangup:{action.get('Channel')}"
    return name


def recorded_replies(prefix: str) -> tuple[bytes, dict[str, Reply]]:
    """The banner and {reply_key: Reply} of one recording's timeline."""
    chunks = timeline(recording(prefix, "timeline"))
    banner = chunks[0].data
    replies: dict[str, Reply] = {}
    i = 1
    while i < len(chunks):
        if chunks[i].direction != "TX":
            i += 1
            continue
        (action,) = FrameParser().feed(chunks[i].data)
        rx = bytearray()
        i += 1
        while i < len(chunks) and chunks[i].direction != "TX":
            if chunks[i].direction == "RX":
                rx += chunks[i].data
            i += 1
        replies.setdefault(reply_key(action), Reply(action.action_id or "", bytes(rx)))
    return banner, replies


LEGACY_VERSION_OUTPUT = (
    "Asterisk 13.38.3 built by root @ vm on a x86_64 running Linux on 2021-01-01 10:00:00 UTC\n"
)


def legacy_command_reply(action_id: str, output: str) -> bytes:
    # Asterisk <= 13 (manager.c action_command): raw CLI text, then the terminator.
    # Not recorded here (the recordings are Asterisk 22): built from that format.
    return (
        f"Response: Follows\r\nPrivilege: Command\r\nActionID: {action_id}\r\n"
        f"{output}--END COMMAND--\r\n\r\n"
    ).encode()


@dataclass
class ServerConn:
    number: int
    writer: asyncio.StreamWriter
    logged_in: bool = False
    received: list[Message] = field(default_factory=list)


class ReplayAmiServer:
    def __init__(
        self,
        *,
        scenario: str = "a1",
        secret: str = "gateway",
        auth_fail_delay: float = 0.05,
    ) -> None:
        self.banner, self.replies = recorded_replies("a1")
        if scenario != "a1":
            _, overlay = recorded_replies(scenario)
            self.replies.update(overlay)
        _, failed = recorded_replies("a2")
        self.login_failed = failed["login"]
        _, before = recorded_replies("a3")
        self.permission_denied = before["ping"]
        self.secret = secret
        self.auth_fail_delay = auth_fail_delay
        self.answer_pings = True
        self.legacy_command = False
        self.hold: set[str] = set()  # lower-case action names never answered
        self.counts: Counter[str] = Counter()
        self.conns: list[ServerConn] = []
        self.login_attempts = 0
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in self.conns:
            conn.writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _touch(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    @property
    def current(self) -> ServerConn:
        return self.conns[-1]

    def drop(self) -> None:
        """Close the newest connection abruptly, as a crashed Asterisk or a cut cable."""
        self.current.writer.transport.abort()

    async def send(self, *pieces: bytes, pause: float = 0.02) -> None:
        """Write pieces to the newest connection as separate TCP sends."""
        writer = self.current.writer
        for n, piece in enumerate(pieces):
            writer.write(piece)
            await writer.drain()
            if n + 1 < len(pieces):
                await asyncio.sleep(pause)  # let the piece leave as its own segment

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = ServerConn(len(self.conns) + 1, writer)
        self.conns.append(conn)
        self._touch()
        parser = FrameParser()
        try:
            writer.write(self.banner)
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for action in parser.feed(data):
                    conn.received.append(action)
                    name = (action.get("Action") or "").lower()
                    self.counts[name] += 1
                    self._touch()
                    if not await self._answer(conn, action, name):
                        return
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            self._tasks.discard(task)
            self._touch()

    async def _answer(self, conn: ServerConn, action: Message, name: str) -> bool:
        """Reply to one action; False once the connection is to be closed."""
        aid = action.action_id or ""
        writer = conn.writer
        if name == "login":
            self.login_attempts += 1
            if action.get("Secret") != self.secret:
                await asyncio.sleep(self.auth_fail_delay)  # Asterisk waits ~1 s
                writer.write(self.login_failed.for_action(aid))
                await writer.drain()
                return False
            conn.logged_in = True
            writer.write(self.replies["login"].for_action(aid))
            return True
        if not conn.logged_in:
            writer.write(self.permission_denied.for_action(aid))
            return True
        if name in self.hold or (name == "ping" and not self.answer_pings):
            return True
        if name == "command" and self.legacy_command:
            writer.write(legacy_command_reply(aid, LEGACY_VERSION_OUTPUT))
            return True
        reply = self.replies.get(reply_key(action))
        if reply is None:
            unknown = (action.get("Action") or "").encode()
            reply = self.replies["nosuchaction"]
            writer.write(reply.for_action(aid).replace(b"NoSuchAction", unknown))
            return True
        writer.write(reply.for_action(aid))
        return name != "logoff"

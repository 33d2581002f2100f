"""The AMI TCP server: banner, per-connection sessions, event fan-out.

Framing follows the recordings: the banner is a bare line, every message ends with a
blank line, events go to every logged-in session whose event mask lets them through.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from sim.ami_codec import BANNER, Headers, MessageReader, encode

if TYPE_CHECKING:
    from sim.simulator import AsteriskSim

log = structlog.get_logger(__name__)

MAX_BACKLOG = 32 * 1024 * 1024  # bytes queued for one client before it is dropped

# `Events:`/`EventMask:` classes map to the first word(s) of an event's Privilege header.
ALL_CLASSES = frozenset(
    {
        "system",
        "call",
        "log",
        "verbose",
        "command",
        "agent",
        "user",
        "config",
        "dtmf",
        "reporting",
        "cdr",
        "dialplan",
        "originate",
        "agi",
        "cc",
        "aoc",
        "test",
        "security",
        "message",
    }
)


class AmiSession:
    """One AMI connection."""

    def __init__(
        self,
        sim: AsteriskSim,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session_id: str,
    ) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.session_id = session_id
        self.authenticated = False
        self.username = ""
        self.event_classes: frozenset[str] = ALL_CLASSES
        self.login_time = 0.0
        self.closed = False
        self._unsubscribe: Callable[[], None] | None = None
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        sock = writer.get_extra_info("sockname") or ("127.0.0.1", 0)
        self.remote = f"IPV4/TCP/{peer[0]}/{peer[1]}"
        self.local = f"IPV4/TCP/{sock[0]}/{sock[1]}"

    # ---- output ---------------------------------------------------------------------

    def send(self, headers: Headers | list[tuple[str, str]]) -> None:
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(encode(headers))
        if self.writer.transport.get_write_buffer_size() > MAX_BACKLOG:
            # Like manager.conf writetimeout: a client that stops reading is dropped
            # rather than letting its backlog grow without bound.
            log.warning("sim_ami_slow_client_dropped", session=self.session_id)
            self.closed = True
            self.writer.transport.abort()

    def send_raw(self, data: bytes) -> None:
        if not self.closed and not self.writer.is_closing():
            self.writer.write(data)

    def on_event(self, frame: Headers) -> None:
        if not self.authenticated or not self.event_classes:
            return
        privilege = frame[1][1] if len(frame) > 1 and frame[1][0] == "Privilege" else "all"
        classes = {p.strip().lower() for p in privilege.split(",")} - {"all"}
        if classes and not (classes & self.event_classes):
            return
        self.send(frame)

    def start_events(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.sim.world.subscribe(self.on_event)

    # ---- input ----------------------------------------------------------------------

    async def run(self) -> None:
        from sim.actions import dispatch

        self.writer.write(BANNER)
        parser = MessageReader()
        try:
            while not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    break
                try:
                    messages = parser.feed(data)
                except ValueError as exc:
                    log.warning("sim_ami_bad_input", error=str(exc), session=self.session_id)
                    break
                for msg in messages:
                    await dispatch(self, msg)
                    if self.closed:
                        break
                with contextlib.suppress(ConnectionError):
                    await self.writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await self.close()

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.sim.ami_sessions.discard(self)
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await self.writer.drain()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


class AmiServer:
    """Listens on a TCP port and runs one AmiSession per connection."""

    def __init__(self, sim: AsteriskSim, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        log.info("sim_ami_listening", host=self.host, port=self.port)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session_id = f"0x{self.sim.world.rng.getrandbits(44) | (0x7F << 40):x}"
        session = AmiSession(self.sim, reader, writer, session_id)
        self.sim.ami_sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        try:
            await session.run()
        finally:
            if task is not None:
                self._sessions.discard(task)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self.sim.ami_sessions):
            await session.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

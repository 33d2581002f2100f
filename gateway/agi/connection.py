"""One FastAGI socket as a plain asyncio.Protocol: its own byte buffer, no streams.

Asterisk opens a new connection for every AGI() call, so whatever a connection costs
before its first byte is read is paid on every call. asyncio streams cost a
StreamReader, a StreamWriter, a task, a timeout and several futures per connection;
this protocol parses the env block as bytes arrive, asks its owner to start a handler
task only once the block is complete, and then hands reply lines to the session from
the same buffer, waking it with one future per read.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, Protocol, cast

from gateway.agi.errors import BadRequest
from gateway.agi.protocol import AgiRequest, EnvBlockParser

# After close(), how long the owner waits for the last bytes to leave before it stops
# counting the connection (streams' wait_closed() was bounded the same way).
CLOSE_GRACE = 1.0
# Loop timers may fire this much early (libuv counts in milliseconds).
_TIMER_SLACK = 0.001


class ConnectionOwner(Protocol):
    """What the server does for its connections; called from the event loop only."""

    def connection_opened(self, conn: AgiConnection) -> None:
        """Admit (conn.expect_request) or refuse (conn.abort) a new connection."""

    def request_read(self, conn: AgiConnection, request: AgiRequest | BadRequest) -> None:
        """The env block is complete (an AgiRequest) or cannot be read (BadRequest)."""

    def connection_done(self, conn: AgiConnection) -> None:
        """Closed by the owner and gone (or past CLOSE_GRACE): stop counting it."""


class AgiConnection(asyncio.Protocol):
    """Bytes of one connection; the owner drives it, the session reads replies from it.

    States: reading the env block (a parser is set), then serving (bytes go to the
    buffer), then closed by the owner (incoming bytes are dropped). One loop timer
    serves every deadline of the connection in turn (env block, then each command):
    a later deadline only moves a number, the timer re-arms itself when it fires early.
    """

    __slots__ = (
        "_buffer", "_closed", "_command_deadline", "_deadline", "_done", "_env_timeout",
        "_eof", "_handler_expired", "_limit", "_lost_exc", "_on_deadline", "_owner",
        "_parser", "_paused", "_timer", "_waiter", "expired", "loop", "lost", "tag", "task",
        "transport",
    )  # one per call: no instance dict to build

    def __init__(self, owner: ConnectionOwner, line_limit: int) -> None:
        self._owner = owner
        self._limit = line_limit
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[Any] | None = None  # the owner's task serving this request
        self.tag: Any = None  # the owner's bookkeeping for this connection
        self._parser: EnvBlockParser | None = None
        self._env_timeout = 0.0
        self._buffer = bytearray()
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self.lost = False  # the socket is gone (connection_lost ran)
        self._lost_exc: BaseException | None = None
        self._closed = False  # the owner called close()
        self._done = False  # the owner was told connection_done
        # One loop timer for two deadlines: the phase's (env block, then the handler's
        # run, then the close grace) and the current command's.
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._on_deadline: Callable[[], None] = _nothing
        self._command_deadline: float | None = None
        self.expired = False  # the command deadline passed (see start_deadline)
        self._handler_expired = False

    # ---- driven by the owner ------------------------------------------------------------

    def expect_request(self, max_env_bytes: int, timeout: float) -> None:
        """Start reading the env block; BadRequest to the owner if it is not done in time."""
        self._parser = EnvBlockParser(max_bytes=max_env_bytes)
        self._env_timeout = timeout
        if not math.isinf(timeout):
            self._set_deadline(self.loop.time() + timeout, self._request_timed_out)

    def close(self) -> None:
        """Done with this connection: flush what was written, then close."""
        if self._closed:
            return
        self._closed = True
        self._parser = None
        self._deadline = self._command_deadline = None
        transport = self.transport
        if self.lost or transport is None:
            self._finish()
            return
        pending = transport.get_write_buffer_size()
        transport.close()
        if pending:  # the peer is slow to read: do not count it for ever
            self._set_deadline(self.loop.time() + CLOSE_GRACE, self._finish)
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def abort(self) -> None:
        """Reset the connection at once (nothing was admitted, nothing is counted)."""
        self._closed = True
        self._done = True
        self._parser = None
        self._stop_timer()
        if self.transport is not None:
            self.transport.abort()

    @property
    def peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        if isinstance(peer, tuple) and len(peer) >= 2:
            return f"{peer[0]}:{peer[1]}"
        return str(peer)

    # ---- used by the session -------------------------------------------------------------

    @property
    def lost_error(self) -> BaseException | None:
        """Why the socket went away, when it was not a clean close."""
        return self._lost_exc

    @property
    def at_eof(self) -> bool:
        """No more bytes will come (the peer closed, or the connection is gone)."""
        return self._eof or self.lost or self._closed

    def start_deadline(self, timeout: float) -> None:
        """Set `expired` and wake the reader `timeout` seconds from now (inf: never)."""
        self.expired = False
        if math.isinf(timeout):
            self._command_deadline = None
        else:
            when = self._command_deadline = self.loop.time() + timeout
            timer = self._timer
            if timer is None or timer.when() > when:  # else it fires first and re-arms
                self._arm(when)

    def stop_deadline(self) -> None:
        self._command_deadline = None

    def start_handler_deadline(self, timeout: float) -> None:
        """Cancel `task` once `timeout` seconds have passed (inf: never)."""
        self._handler_expired = False
        if not math.isinf(timeout):
            self._set_deadline(self.loop.time() + timeout, self._handler_timed_out)

    def handler_timed_out(self) -> bool:
        """Call on CancelledError: True if the handler deadline caused it and nothing else."""
        if not self._handler_expired:
            return False
        self._handler_expired = False
        assert self.task is not None
        return self.task.uncancel() == 0

    def stop_handler_deadline(self) -> None:
        self._deadline = None
        if self._handler_expired:  # the handler swallowed the cancellation and went on
            self._handler_expired = False
            assert self.task is not None
            self.task.uncancel()

    def pop_line(self) -> bytes | None:
        """The next complete line (LF included) from the buffer, or None if there is none.

        ValueError when the line is longer than the limit: the peer is not Asterisk.
        """
        buffer = self._buffer
        end = buffer.find(b"\n")
        if end < 0:
            if len(buffer) > self._limit:
                buffer.clear()
                raise ValueError("line too long")
            return None
        if end > self._limit:
            del buffer[: end + 1]
            raise ValueError("line too long")
        if end + 1 == len(buffer):
            line = bytes(buffer)
            buffer.clear()
        else:
            line = bytes(buffer[: end + 1])
            del buffer[: end + 1]
        if self._paused and len(buffer) <= self._limit:
            self._paused = False
            if self.transport is not None and not self.lost:
                self.transport.resume_reading()
        return line

    def readable(self) -> asyncio.Future[None]:
        """A future done when bytes arrive, the peer closes or the deadline passes."""
        waiter = self.loop.create_future()
        self._waiter = waiter
        return waiter

    # ---- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._owner.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        parser = self._parser
        if parser is None:
            buffer = self._buffer
            buffer += data
            if not self._paused and len(buffer) > 2 * self._limit:
                self._paused = True  # a peer flooding us waits, as with streams
                assert self.transport is not None
                self.transport.pause_reading()
            waiter = self._waiter  # _wake(), inlined: once per reply
            if waiter is not None:
                self._waiter = None
                if not waiter.done():
                    waiter.set_result(None)
            return
        try:
            request = parser.feed(data)
        except BadRequest as exc:
            self._request_ends(exc, parser.remainder)
            return
        if request is not None:
            self._request_ends(request, parser.remainder)

    def eof_received(self) -> bool:
        self._eof = True
        if self._parser is not None:
            self._request_ends(
                BadRequest("connection closed before the end of the env block", framed=False)
            )
        else:
            self._wake()
        return True  # keep our side open: the owner closes when it is done

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._lost_exc = exc
        if self._parser is not None:
            reason = "connection closed before the end of the env block"
            if exc is not None:
                reason = f"connection lost before the end of the env block: {exc!r}"
            self._request_ends(BadRequest(reason, framed=False))
        else:
            self._wake()
        if self._closed:
            self._finish()

    # ---- internals -----------------------------------------------------------------------

    def _request_ends(self, outcome: AgiRequest | BadRequest, remainder: bytes = b"") -> None:
        self._parser = None
        self._deadline = None
        if remainder:  # e.g. HANGUP right behind the block: the session reads it first
            self._buffer += remainder
        self._owner.request_read(self, outcome)

    def _request_timed_out(self) -> None:
        if self._parser is not None:
            self._request_ends(
                BadRequest(f"no complete env block within {self._env_timeout}s", framed=False)
            )

    def _handler_timed_out(self) -> None:
        task = self.task
        if task is not None and not task.done():
            self._handler_expired = True
            task.cancel()

    def _set_deadline(self, when: float, on_deadline: Callable[[], None]) -> None:
        self._deadline = when
        self._on_deadline = on_deadline
        self._arm(when)

    def _arm(self, when: float) -> None:
        """Make sure the timer fires no later than `when`."""
        timer = self._timer
        if timer is None or timer.when() > when:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(when, self._deadline_passed)

    def _deadline_passed(self) -> None:
        self._timer = None
        now = self.loop.time() + _TIMER_SLACK
        when = self._deadline
        if when is not None and when <= now:
            self._deadline = None
            self._on_deadline()
        when = self._command_deadline
        if when is not None and when <= now:
            self._command_deadline = None
            self.expired = True
            self._wake()
        pending = [d for d in (self._deadline, self._command_deadline) if d is not None]
        if pending and self._timer is None:
            self._timer = self.loop.call_at(min(pending), self._deadline_passed)

    def _stop_timer(self) -> None:
        self._deadline = self._command_deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        self._stop_timer()
        self._wake()
        self._owner.connection_done(self)
        self.transport = None  # no cycle left for the garbage collector
        self.task = None


def _nothing() -> None:
    pass

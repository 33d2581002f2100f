"""Commands to one Asterisk channel over an open FastAGI connection.

One command at a time, strictly: res_agi.c reads commands through a stdio buffer and
only polls the socket for the next one, so a second command written before the first
reply can sit unread until the call ends. Turns enforce that even if a handler
shares the session between tasks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.agi.connection import AgiConnection
from gateway.agi.errors import (
    AgiCommandError,
    AgiConnectionClosed,
    AgiError,
    AgiProtocolError,
    AgiTimeout,
    ChannelDead,
)
from gateway.agi.protocol import (
    AgiReply,
    bare_token,
    encode_command,
    ends_multiline,
    is_hangup_notice,
    parse_reply,
    quote_arg,
    starts_multiline,
)
from gateway.agi.turns import Turns

DEFAULT_COMMAND_TIMEOUT = 5.0
_MAX_REPLY_LINES = 500


_MSET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}\Z")
_MSET_VALUE = re.compile(r"[A-Za-z0-9_.:;@+%/-]{0,1000}\Z")
_NO_SUCH_APP = -2

@dataclass(frozen=True)
class PlaybackResult:
    """STREAM FILE / SAY NUMBER: `digit` pressed to interrupt, if any; `endpos` in samples."""

    result: int
    endpos: int | None

    @property
    def digit(self) -> str | None:
        return chr(self.result) if 0 < self.result < 0x110000 else None


@dataclass(frozen=True)
class DigitsResult:
    """GET DATA: the digits entered; `timed_out` when the caller stopped before the end."""

    digits: str
    timed_out: bool


class AgiSession:
    """The command side of one FastAGI connection.

    `hung_up` turns true once Asterisk has said `HANGUP` (it does so in front of the
    reply to the next command). After that GET/SET VARIABLE and EXEC still work and
    commands that need audio raise `ChannelDead`.
    """

    def __init__(
        self,
        connection: AgiConnection,
        *,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
        log: Any = None,
    ) -> None:
        self._conn = connection
        self._timeout = command_timeout
        self._turns = Turns()  # one command at a time, even across tasks
        self._unusable: str | None = None
        self._set_names: set[str] = set()
        self.hung_up = False
        self._log: Any = log

    @property
    def log(self) -> Any:
        """The connection's logger, bound with peer, call_id and route."""
        if self._log is None:
            self._log = structlog.get_logger(__name__)
        return self._log

    @log.setter
    def log(self, value: Any) -> None:
        self._log = value

    @property
    def usable(self) -> bool:
        """False after a timeout, a closed socket or a garbled reply."""
        return self._unusable is None

    @property
    def variables_set(self) -> frozenset[str]:
        """Names this session has set successfully, so the server knows if a decision exists."""
        return frozenset(self._set_names)

    async def command(self, line: str, *, reply_timeout: float | None = None) -> AgiReply:
        """Send one raw command line and return its 200 reply.

        510/520 raise AgiCommandError, 511 raises ChannelDead; the session stays usable.
        """
        data = encode_command(line)
        turns = self._turns
        if turns.busy:
            await turns.wait()
        else:
            turns.busy = True
        try:
            if self._unusable is not None:
                raise AgiConnectionClosed(f"cannot send {line!r}: {self._unusable}")
            conn = self._conn
            conn.start_deadline(self._timeout if reply_timeout is None else reply_timeout)
            try:
                transport = conn.transport
                if transport is None or conn.lost:
                    raise _lost(conn, line)
                transport.write(data)
                while (raw := conn.pop_line()) is None:  # _read_line, inlined: hot path
                    if conn.expired or conn.at_eof:
                        raw = await self._read_line(line)  # raises the right error
                        break
                    await conn.readable()
                if not raw.startswith(b"200 "):  # HANGUP first, or a multi-line reply
                    raw = await self._read_reply(line, raw)
                reply = parse_reply(raw)
            except ValueError:  # from pop_line: a reply line past the connection's line cap
                self._unusable = f"reply line to {line!r} is too long"
                raise AgiProtocolError(self._unusable) from None
            except AgiError as exc:
                self._unusable = str(exc)
                raise
            finally:
                conn.stop_deadline()
        finally:
            turns.release()
        if reply.code == 200:
            return reply
        if reply.code == 511:
            self.hung_up = True
            raise ChannelDead(reply.code, line, reply.text)
        raise AgiCommandError(reply.code, line, reply.text)

    async def _read_reply(self, line: str, first: bytes) -> bytes:
        while is_hangup_notice(first):
            self.hung_up = True
            first = await self._read_line(line)
        if not starts_multiline(first):
            return first
        parts = [first]
        while True:
            nxt = await self._read_line(line)
            parts.append(nxt)
            if ends_multiline(nxt):
                return b"".join(parts)
            if len(parts) > _MAX_REPLY_LINES:
                raise AgiProtocolError(f"reply to {line!r} runs past {_MAX_REPLY_LINES} lines")

    async def _read_line(self, line: str) -> bytes:
        conn = self._conn
        while True:
            try:
                raw = conn.pop_line()
            except ValueError:  # a reply line past the connection's line cap
                raise AgiProtocolError(f"reply line to {line!r} is too long") from None
            if raw is not None:
                return raw
            if conn.expired:
                raise AgiTimeout(f"no reply to {line!r} within the command timeout")
            if conn.at_eof:
                raise _lost(conn, line)
            await conn.readable()

    # ---- the commands callgate uses ---------------------------------------------------------

    async def get_variable(self, name: str) -> str | None:
        """The variable's value, or None when it is not set."""
        reply = await self.command(f"GET VARIABLE {bare_token(name, 'variable name')}")
        return reply.value if reply.result == "1" else None

    async def get_full_variable(self, expression: str, channel: str | None = None) -> str | None:
        """Evaluate `${...}` expressions as the dialplan would; None if `channel` is unknown."""
        line = f"GET FULL VARIABLE {quote_arg(expression)}"
        if channel is not None:
            line += " " + bare_token(channel, "channel name")
        reply = await self.command(line)
        return reply.value if reply.result == "1" else None

    async def set_variable(self, name: str, value: str) -> None:
        """Set a channel variable; CR, LF and NUL are dropped from the value."""
        await self.command(f"SET VARIABLE {bare_token(name, 'variable name')} {quote_arg(value)}")
        self._set_names.add(name)

    async def set_variables(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Set several variables in one round trip (`EXEC MSet`), in order.

        Each FastAGI round trip costs more than the work behind a decision, so the
        decision's variables go in one command. MSet splits on `,` and `=` and strips
        quotes and backslashes, so a value holding any of those (or a name MSet would
        misread) falls back to one SET VARIABLE each; so does an Asterisk without MSet.
        """
        if not pairs:
            return
        if len(pairs) > 1 and all(
            _MSET_NAME.match(n) and _MSET_VALUE.match(v) for n, v in pairs
        ):
            data = ",".join(f"{n}={v}" for n, v in pairs)
            if await self.exec_app("MSet", data) != _NO_SUCH_APP:
                self._set_names.update(n for n, _ in pairs)
                return
        for name, value in pairs:
            await self.set_variable(name, value)

    async def exec_app(
        self, app: str, options: str = "", *, reply_timeout: float | None = None
    ) -> int:
        """Run a dialplan application; returns its result (-2: no such application)."""
        reply = await self.command(
            f"EXEC {bare_token(app, 'application')} {quote_arg(options)}",
            reply_timeout=reply_timeout,
        )
        return reply.result_int

    async def stream_file(
        self, filename: str, escape_digits: str = "", *, reply_timeout: float | None = None
    ) -> PlaybackResult:
        reply = await self.command(
            f"STREAM FILE {bare_token(filename, 'file name')} {quote_arg(escape_digits)}",
            reply_timeout=reply_timeout,
        )
        return _playback(reply)

    async def say_number(
        self, number: int, escape_digits: str = "", *, reply_timeout: float | None = None
    ) -> PlaybackResult:
        reply = await self.command(
            f"SAY NUMBER {int(number)} {quote_arg(escape_digits)}", reply_timeout=reply_timeout
        )
        return _playback(reply)

    async def get_data(
        self,
        filename: str,
        timeout_ms: int = 0,
        max_digits: int | None = None,
        *,
        reply_timeout: float | None = None,
    ) -> DigitsResult:
        """Play `filename` and collect DTMF; timeout_ms 0 means Asterisk's default."""
        line = f"GET DATA {bare_token(filename, 'file name')} {int(timeout_ms)}"
        if max_digits is not None:
            line += f" {int(max_digits)}"
        reply = await self.command(line, reply_timeout=reply_timeout)
        if reply.result == "-1":
            raise AgiCommandError(reply.code, line, reply.text)
        return DigitsResult(digits=reply.result or "", timed_out=reply.value == "timeout")

    async def answer(self) -> None:
        reply = await self.command("ANSWER")
        if reply.result_int < 0:
            raise AgiCommandError(reply.code, "ANSWER", reply.text)

    async def hangup(self, channel: str | None = None) -> bool:
        """Hang up this channel (or `channel`); False when that channel does not exist."""
        line = "HANGUP" if channel is None else f"HANGUP {bare_token(channel, 'channel name')}"
        reply = await self.command(line)
        return reply.result == "1"

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command(f"VERBOSE {quote_arg(message)} {int(level)}")


def _lost(conn: AgiConnection, line: str) -> AgiConnectionClosed:
    exc = conn.lost_error
    if exc is not None:
        return AgiConnectionClosed(f"connection lost while sending {line!r}: {exc!r}")
    return AgiConnectionClosed(f"Asterisk closed the connection before answering {line!r}")


def _playback(reply: AgiReply) -> PlaybackResult:
    endpos = reply.extras.get("endpos")
    try:
        position = int(endpos) if endpos is not None else None
    except ValueError:
        raise AgiProtocolError(f"endpos is not a number in {reply.text!r}") from None
    return PlaybackResult(result=reply.result_int, endpos=position)

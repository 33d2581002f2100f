"""The errors of the FastAGI layer, one base class so callers can catch the family.

Every failure on an AGI socket is expected (bad dialplan, garbage, a caller hanging up),
so each one is an `AgiError` with a reason an operator can read, never a bare exception.
"""

from __future__ import annotations


class AgiError(Exception):
    """Anything that went wrong on a FastAGI connection."""


class BadRequest(AgiError):
    """The env block Asterisk sent cannot be turned into a request.

    `framed` tells whether the whole block (up to its empty line) was read: only then is the
    peer an Asterisk waiting for commands, so the server can still set a DENY on its channel.
    """

    def __init__(self, reason: str, *, framed: bool = True, call_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.framed = framed
        self.call_id = call_id  # agi_uniqueid when the block got that far, for the log


class AgiProtocolError(AgiError):
    """A reply line that is not AGI: the stream is out of step and cannot be trusted."""


class AgiCommandError(AgiError):
    """Asterisk refused a command (510 unknown, 520 bad usage, ...)."""

    def __init__(self, code: int, command: str, text: str) -> None:
        super().__init__(f"{command!r} failed with {code}: {text}")
        self.code = code
        self.command = command
        self.text = text


class ChannelDead(AgiCommandError):
    """511: the channel has hung up and the command needs a live channel."""


class AgiConnectionClosed(AgiError):
    """The socket closed (or the session became unusable) before the reply came."""


class AgiTimeout(AgiError):
    """No reply within the per-command timeout; the session is unusable afterwards."""

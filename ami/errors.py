"""Errors raised by the AMI client; all derive from AmiError so callers can catch one type."""

from __future__ import annotations

from ami.frames import Message


class AmiError(Exception):
    """Base class of every AMI client error."""


class AmiNotConnected(AmiError):
    """No logged-in AMI session right now; the action was not sent."""


class AmiDisconnected(AmiError):
    """The session dropped while the action was pending; it may or may not have run.

    It is never re-sent on the next session: a repeated Originate is a second call.
    """


class AmiTimeout(AmiError):
    """No (complete) answer within the timeout; the action may still run."""


class AmiAuthError(AmiError):
    """Asterisk refused the Login (wrong username or secret, or an ACL)."""


class AmiActionError(AmiError):
    """Asterisk answered `Response: Error`."""

    def __init__(self, action: str, response: Message) -> None:
        self.action = action
        self.response = response
        super().__init__(f"{action} failed: {response.get('Message', '')}")

"""FastAGI side of callgate: the server Asterisk's `AGI(agi://gw:4573/ROUTE,...)` talks to."""

from gateway.agi.decision import Decision, apply_decision, set_decision
from gateway.agi.errors import (
    AgiCommandError,
    AgiConnectionClosed,
    AgiError,
    AgiProtocolError,
    AgiTimeout,
    BadRequest,
    ChannelDead,
)
from gateway.agi.protocol import AgiReply, AgiRequest, parse_env_block, parse_reply, quote_arg
from gateway.agi.router import Handler, Route, Router
from gateway.agi.server import AgiServer
from gateway.agi.session import AgiSession, DigitsResult, PlaybackResult

__all__ = [
    "AgiCommandError",
    "AgiConnectionClosed",
    "AgiError",
    "AgiProtocolError",
    "AgiReply",
    "AgiRequest",
    "AgiServer",
    "AgiSession",
    "AgiTimeout",
    "BadRequest",
    "ChannelDead",
    "Decision",
    "DigitsResult",
    "Handler",
    "PlaybackResult",
    "Route",
    "Router",
    "apply_decision",
    "parse_env_block",
    "parse_reply",
    "quote_arg",
    "set_decision",
]

"""Route names (the path of agi://host:port/ROUTE) to handlers."""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.agi.protocol import AgiRequest
from gateway.agi.session import AgiSession

Handler = Callable[[AgiRequest, AgiSession], Awaitable[None]]

_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*\Z")


@dataclass(frozen=True)
class Route:
    """`timeout` overrides the server's request_timeout (an IVR needs minutes, authorize
    a few milliseconds); None means the server's value, math.inf means no limit."""

    name: str
    handler: Handler
    timeout: float | None = None


class Router:
    """Exact-name lookup; routes are part of the public contract, so no patterns."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}

    def register(self, name: str, handler: Handler, *, timeout: float | None = None) -> None:
        if not _NAME_RE.match(name):
            raise ValueError(f"route name {name!r} must be a URL path without '?' or spaces")
        if name in self._routes:
            raise ValueError(f"route {name!r} is already registered")
        if timeout is not None and not (timeout > 0 or math.isinf(timeout)):
            raise ValueError(f"route timeout must be positive, not {timeout}")
        self._routes[name] = Route(name, handler, timeout)

    def resolve(self, route: str) -> Route | None:
        return self._routes.get(route)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._routes))

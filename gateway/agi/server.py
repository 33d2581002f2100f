"""The FastAGI TCP server: one request per connection, a task per complete request.

Connections are plain protocols (gateway.agi.connection): no task exists until the env
block has been read, and none at all for garbage.

Whatever happens on a connection (garbage, a handler bug, an overload) ends with a log
line and, whenever Asterisk is still listening, a DENY on its channel: a dialplan must
never be left waiting or proceed with an undecided call.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from gateway.agi.connection import CLOSE_GRACE, AgiConnection
from gateway.agi.decision import (
    CAUSE_NO_CIRCUIT,
    CAUSE_REJECTED,
    CAUSE_TEMPORARY_FAILURE,
    Decision,
    apply_decision,
)
from gateway.agi.errors import AgiConnectionClosed, AgiError, BadRequest, ChannelDead
from gateway.agi.protocol import MAX_ENV_BYTES, AgiRequest
from gateway.agi.router import Route, Router
from gateway.agi.session import DEFAULT_COMMAND_TIMEOUT, AgiSession

DENY_BAD_REQUEST = Decision.deny("bad_request", CAUSE_REJECTED)
DENY_HANDLER_FAILED = Decision.deny("backend_unavailable", CAUSE_TEMPORARY_FAILURE)
DENY_OVER_CAP = Decision.deny("backend_unavailable", CAUSE_NO_CIRCUIT)

_READ_LIMIT = 64 * 1024  # the longest reply line (at least max_env_bytes)
_SERVE = "serve"  # AgiConnection.tag: within max_connections
_REFUSE = "refuse"  # over the cap: read the request, answer DENY


class AgiServer:
    """FastAGI server.

    `request_timeout` bounds the wait for the env block and, unless the route sets its
    own, the handler's run; on expiry the call gets DENY backend_unavailable.

    Above `max_connections` a connection is still read and answered with a DENY
    (backend_unavailable, cause 34) so the call fails fast instead of hanging; beyond
    twice the cap connections are aborted at once. Asterisk then ends AGI() with
    AGISTATUS=SUCCESS and no CALLGATE_RESULT, as it does after garbage: dialplans must
    treat a missing CALLGATE_RESULT as DENY.
    """

    def __init__(
        self,
        host: str,
        port: int,
        router: Router,
        *,
        max_connections: int = 512,
        request_timeout: float = 5.0,
        logger: Any = None,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
        max_env_bytes: int = MAX_ENV_BYTES,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._host = host
        self._port = port
        self._router = router
        self._max_connections = max_connections
        self.request_timeout = request_timeout  # SIGHUP may change it: read per request
        self._command_timeout = command_timeout
        self._max_env_bytes = max_env_bytes
        self._log: Any = logger if logger is not None else structlog.get_logger(__name__)
        self._server: asyncio.Server | None = None
        self._bound_port: int | None = None
        self._closing = False
        self._connections: set[AgiConnection] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._active = 0
        self._overflow = 0

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("AgiServer already started")
        loop = asyncio.get_running_loop()
        line_limit = max(_READ_LIMIT, self._max_env_bytes)
        self._server = await loop.create_server(
            lambda: AgiConnection(self, line_limit), self._host, self._port
        )
        self._bound_port = int(self._server.sockets[0].getsockname()[1])
        self._log.info("agi_listening", host=self._host, port=self.bound_port)

    @property
    def bound_port(self) -> int:
        """The port bound at start() (also after stop_accepting, for logs and tests)."""
        if self._bound_port is None:
            raise RuntimeError("AgiServer has not been started")
        return self._bound_port

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    def stop_accepting(self) -> None:
        """Close the listening socket; connections in flight carry on."""
        if self._server is not None and self._server.is_serving():
            self._server.close()
            self._log.info("agi_stopped_accepting", in_flight=len(self._connections))

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no connection is in flight; False if some still are after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                while self._connections:
                    await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop accepting and cancel what is still running."""
        self.stop_accepting()
        self._closing = True
        connections = list(self._connections)
        tasks = []
        for conn in connections:
            if conn.task is not None:
                conn.task.cancel()
                tasks.append(conn.task)
            else:
                conn.close()  # still reading its env block: no handler to cancel
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if connections:
            # each leaves the set once its socket is closed (at most CLOSE_GRACE later)
            await self.wait_idle(CLOSE_GRACE + 1.0)
            self._log.info("agi_connections_cancelled", count=len(connections))
        if self._server is not None:
            await self._server.wait_closed()

    # ---- one connection (AgiConnection calls these) ---------------------------------------

    def connection_opened(self, conn: AgiConnection) -> None:
        if self._closing:
            conn.abort()
            return
        if self._active < self._max_connections:
            self._active += 1
            conn.tag = _SERVE
        elif self._overflow < self._max_connections:
            self._overflow += 1
            conn.tag = _REFUSE
        else:
            self._log.warning(
                "agi_connection_cap_reached",
                peer=conn.peer,
                action="closed",
                active=self._active,
                limit=self._max_connections,
            )
            conn.abort()
            return
        self._connections.add(conn)
        self._idle.clear()
        conn.expect_request(self._max_env_bytes, self.request_timeout)

    def request_read(self, conn: AgiConnection, request: AgiRequest | BadRequest) -> None:
        if self._closing:
            conn.close()
            return
        if conn.tag is _SERVE:
            if isinstance(request, BadRequest) and not request.framed:
                self._log.warning("agi_garbage_closed", peer=conn.peer, reason=request.reason)
                conn.close()
                return
            coro = self._serve(conn, request)
        else:
            coro = self._refuse(conn, request)
        conn.task = conn.loop.create_task(coro)

    def connection_done(self, conn: AgiConnection) -> None:
        if conn.tag is _SERVE:
            self._active -= 1
        else:
            self._overflow -= 1
        self._connections.discard(conn)
        if not self._connections:
            self._idle.set()

    async def _serve(self, conn: AgiConnection, request: AgiRequest | BadRequest) -> None:
        if isinstance(request, BadRequest):
            log = self._log.bind(peer=conn.peer)
        else:
            log = self._log.bind(peer=conn.peer, call_id=request.call_id, route=request.route)
        try:
            if isinstance(request, BadRequest):
                await self._bad_request(request, conn, log)
                return
            # This task runs in its own copy of the context: nothing to reset afterwards.
            structlog.contextvars.bind_contextvars(call_id=request.call_id, route=request.route)
            session = AgiSession(conn, command_timeout=self._command_timeout, log=log)
            route = self._router.resolve(request.route)
            if route is None:
                log.warning("agi_unknown_route", known=self._router.names)
                await self._deny(session, DENY_BAD_REQUEST, log)
                return
            log.debug("agi_request", args=dict(request.args))
            await self._run_handler(route, request, session, conn, log)
        except asyncio.CancelledError:
            if not self._closing:
                raise
            # Cancelled by close(): end normally, as the old streams server did.
        except Exception:
            log.exception("agi_connection_failed")
        finally:
            conn.close()

    async def _run_handler(
        self, route: Route, request: AgiRequest, session: AgiSession, conn: AgiConnection,
        log: Any,
    ) -> None:
        limit = self.request_timeout if route.timeout is None else route.timeout
        loop = conn.loop
        started = loop.time()
        timed_out = False
        conn.start_handler_deadline(limit)
        try:
            try:
                await route.handler(request, session)
            except asyncio.CancelledError:
                if not conn.handler_timed_out():
                    raise
                timed_out = True
            finally:
                conn.stop_handler_deadline()
        except ChannelDead:
            log.info("agi_channel_hung_up")
        except AgiConnectionClosed as exc:
            log.info("agi_connection_lost", error=str(exc))
        except Exception as exc:
            log.exception("agi_handler_failed", error=repr(exc))
            await self._deny_if_undecided(session, log)
        else:
            if timed_out:
                log.error("agi_handler_timeout", timeout=limit)
                await self._deny_if_undecided(session, log)
            else:
                log.debug("agi_request_done", ms=round((loop.time() - started) * 1000, 3))

    async def _refuse(self, conn: AgiConnection, request: AgiRequest | BadRequest) -> None:
        log = self._log.bind(peer=conn.peer)
        common = {"active": self._active, "limit": self._max_connections}
        try:
            if isinstance(request, BadRequest):
                action = "denied" if request.framed else "closed"
                log.warning(
                    "agi_connection_cap_reached",
                    action=action,
                    call_id=request.call_id,
                    reason=request.reason,
                    **common,
                )
                if request.framed:
                    session = AgiSession(conn, command_timeout=self._command_timeout, log=log)
                    await self._deny(session, DENY_OVER_CAP, log)
                return
            log = log.bind(call_id=request.call_id, route=request.route)
            log.warning("agi_connection_cap_reached", action="denied", **common)
            session = AgiSession(conn, command_timeout=self._command_timeout, log=log)
            await self._deny(session, DENY_OVER_CAP, log)
        except asyncio.CancelledError:
            if not self._closing:
                raise
        except Exception:
            log.exception("agi_connection_failed")
        finally:
            conn.close()

    async def _bad_request(self, exc: BadRequest, conn: AgiConnection, log: Any) -> None:
        log = log.bind(call_id=exc.call_id)
        log.warning("agi_bad_request", reason=exc.reason)
        session = AgiSession(conn, command_timeout=self._command_timeout, log=log)
        await self._deny(session, DENY_BAD_REQUEST, log)

    async def _deny_if_undecided(self, session: AgiSession, log: Any) -> None:
        if "CALLGATE_RESULT" in session.variables_set:
            return  # the handler decided before failing; its decision stands
        await self._deny(session, DENY_HANDLER_FAILED, log)

    async def _deny(self, session: AgiSession, decision: Decision, log: Any) -> None:
        if not session.usable:
            log.warning("agi_deny_not_sent", reason="session unusable", decision=decision.reason)
            return
        try:
            await apply_decision(session, decision)
        except AgiError as exc:
            log.warning("agi_deny_not_sent", reason=str(exc), decision=decision.reason)
            return
        log.info("agi_denied", reason=decision.reason, cause=decision.cause)

"""The FastAGI TCP server: one task per connection, one request per connection.

Whatever happens on a connection (garbage, a handler bug, an overload) ends with a log
line and, whenever Asterisk is still listening, a DENY on its channel: a dialplan must
never be left waiting or proceed with an undecided call.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

import structlog

from gateway.agi.decision import (
    CAUSE_NO_CIRCUIT,
    CAUSE_REJECTED,
    CAUSE_TEMPORARY_FAILURE,
    Decision,
    apply_decision,
)
from gateway.agi.errors import AgiConnectionClosed, AgiError, BadRequest, ChannelDead
from gateway.agi.protocol import MAX_ENV_BYTES, AgiRequest, EnvBlockParser
from gateway.agi.router import Route, Router
from gateway.agi.session import DEFAULT_COMMAND_TIMEOUT, AgiSession

DENY_BAD_REQUEST = Decision.deny("bad_request", CAUSE_REJECTED)
DENY_HANDLER_FAILED = Decision.deny("backend_unavailable", CAUSE_TEMPORARY_FAILURE)
DENY_OVER_CAP = Decision.deny("backend_unavailable", CAUSE_NO_CIRCUIT)

_READ_LIMIT = 64 * 1024


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
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._active = 0
        self._overflow = 0

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("AgiServer already started")
        self._server = await asyncio.start_server(
            self._on_connection,
            self._host,
            self._port,
            limit=max(_READ_LIMIT, self._max_env_bytes),
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
        return len(self._tasks)

    def stop_accepting(self) -> None:
        """Close the listening socket; connections in flight carry on."""
        if self._server is not None and self._server.is_serving():
            self._server.close()
            self._log.info("agi_stopped_accepting", in_flight=len(self._tasks))

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no connection is in flight; False if some still are after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                while self._tasks:
                    await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop accepting and cancel what is still running."""
        self.stop_accepting()
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
            self._log.info("agi_connections_cancelled", count=len(tasks))
        if self._server is not None:
            await self._server.wait_closed()

    # ---- one connection ---------------------------------------------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        log = self._log.bind(peer=_peer(writer))
        if self._active < self._max_connections:
            over_cap = False
            self._active += 1
        elif self._overflow < self._max_connections:
            over_cap = True
            self._overflow += 1
        else:
            log.warning(
                "agi_connection_cap_reached",
                action="closed",
                active=self._active,
                limit=self._max_connections,
            )
            writer.transport.abort()
            return
        self._tasks.add(task)
        self._idle.clear()
        try:
            if over_cap:
                await self._refuse(reader, writer, log)
            else:
                await self._serve(reader, writer, log)
        except asyncio.CancelledError:
            if not self._closing:
                raise
            # Cancelled by close(): end normally, as Python 3.11's stream callback calls
            # task.exception() and would log a cancelled task as an error.
        except Exception:
            log.exception("agi_connection_failed")
        finally:
            try:
                await _close(writer)  # before wait_idle() may return: the answer is out
            finally:
                if over_cap:
                    self._overflow -= 1
                else:
                    self._active -= 1
                self._tasks.discard(task)
                if not self._tasks:
                    self._idle.set()

    async def _read_request(self, reader: asyncio.StreamReader) -> AgiRequest:
        parser = EnvBlockParser(max_bytes=self._max_env_bytes)
        try:
            async with asyncio.timeout(self.request_timeout):
                while True:
                    # Whole reads, not readline: Asterisk flushes the block in a few writes,
                    # and 24 readline calls per request were the server's largest cost.
                    chunk = await reader.read(_READ_LIMIT)
                    if not chunk:
                        raise BadRequest(
                            "connection closed before the end of the env block", framed=False
                        )
                    request = parser.feed(chunk)
                    if request is not None:
                        if parser.remainder and not reader.at_eof():
                            # e.g. HANGUP sent right behind the block: give it back to
                            # the session, in order (nothing can arrive before we await)
                            reader.feed_data(parser.remainder)
                        return request
        except TimeoutError:
            raise BadRequest(
                f"no complete env block within {self.request_timeout}s", framed=False
            ) from None

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: Any
    ) -> None:
        try:
            request = await self._read_request(reader)
        except BadRequest as exc:
            await self._bad_request(exc, reader, writer, log)
            return
        log = log.bind(call_id=request.call_id, route=request.route)
        with structlog.contextvars.bound_contextvars(
            call_id=request.call_id, route=request.route
        ):
            session = AgiSession(reader, writer, command_timeout=self._command_timeout, log=log)
            route = self._router.resolve(request.route)
            if route is None:
                log.warning("agi_unknown_route", known=self._router.names)
                await self._deny(session, DENY_BAD_REQUEST, log)
                return
            log.debug("agi_request", args=dict(request.args))
            await self._run_handler(route, request, session, log)

    async def _run_handler(
        self, route: Route, request: AgiRequest, session: AgiSession, log: Any
    ) -> None:
        limit = self.request_timeout if route.timeout is None else route.timeout
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(None if math.isinf(limit) else limit) as budget:
                await route.handler(request, session)
        except ChannelDead:
            log.info("agi_channel_hung_up")
        except AgiConnectionClosed as exc:
            log.info("agi_connection_lost", error=str(exc))
        except TimeoutError:
            if not budget.expired():
                raise
            log.error("agi_handler_timeout", timeout=limit)
            await self._deny_if_undecided(session, log)
        except Exception as exc:
            log.exception("agi_handler_failed", error=repr(exc))
            await self._deny_if_undecided(session, log)
        else:
            log.debug("agi_request_done", ms=round((loop.time() - started) * 1000, 3))

    async def _refuse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: Any
    ) -> None:
        common = {"active": self._active, "limit": self._max_connections}
        try:
            request = await self._read_request(reader)
        except BadRequest as exc:
            action = "denied" if exc.framed else "closed"
            log.warning(
                "agi_connection_cap_reached",
                action=action,
                call_id=exc.call_id,
                reason=exc.reason,
                **common,
            )
            if exc.framed:
                session = AgiSession(reader, writer, command_timeout=self._command_timeout, log=log)
                await self._deny(session, DENY_OVER_CAP, log)
            return
        log = log.bind(call_id=request.call_id, route=request.route)
        log.warning("agi_connection_cap_reached", action="denied", **common)
        session = AgiSession(reader, writer, command_timeout=self._command_timeout, log=log)
        await self._deny(session, DENY_OVER_CAP, log)

    async def _bad_request(
        self,
        exc: BadRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        log: Any,
    ) -> None:
        if not exc.framed:
            log.warning("agi_garbage_closed", reason=exc.reason)
            return
        log = log.bind(call_id=exc.call_id)
        log.warning("agi_bad_request", reason=exc.reason)
        session = AgiSession(reader, writer, command_timeout=self._command_timeout, log=log)
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


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, asyncio.TimeoutError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()

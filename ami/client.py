"""AMI client: one logged-in session per Asterisk, kept alive and re-established forever.

Facts from the Asterisk 22 recordings this relies on:

* the banner is a bare line; Login is only sent once it has arrived;
* a refused Login is answered about 1 s later with `Response: Error` and the socket is
  closed; that is reported as AmiAuthError and retried with backoff (an operator may
  fix the secret);
* `SuccessfulAuth` may arrive after the response to the *next* action, so nothing waits
  for it: the Login response alone means logged in;
* list actions answer `EventList: start`, then item events carrying the ActionID, then
  `...Complete` with `EventList: Complete`;
* `OriginateResponse` arrives as an event with the Originate's ActionID after the
  Originate's response has completed the action, so it goes to event subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from ami.errors import (
    AmiActionError,
    AmiAuthError,
    AmiDisconnected,
    AmiError,
    AmiNotConnected,
    AmiTimeout,
)
from ami.frames import FrameParser, Message, encode_action
from ami.listeners import SerialDispatcher

# A callback may be a plain function or a coroutine function; any return is accepted.
EventCallback = Callable[[Message], object]
ResyncCallback = Callable[[list[Message]], object]
Fields = Iterable[tuple[str, str]] | Mapping[str, str]
Sleep = Callable[[float], Awaitable[None]]

_OK_RESPONSES = frozenset({"success", "follows", "goodbye"})
_READ_SIZE = 65536


@dataclass(frozen=True)
class AmiSettings:
    name: str
    host: str
    port: int = 5038
    username: str = ""
    secret: str = field(default="", repr=False)
    action_timeout: float = 10.0
    ping_interval: float = 20.0
    connect_timeout: float = 5.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0

    def __post_init__(self) -> None:
        if self.action_timeout <= 0 or self.ping_interval <= 0 or self.connect_timeout <= 0:
            raise ValueError("AMI timeouts and ping_interval must be positive")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ValueError("AMI reconnect delays need 0 < reconnect_min <= reconnect_max")


@dataclass(frozen=True)
class ActionResult:
    """The response to an action; for list actions also the item events and the Complete."""

    response: Message
    events: list[Message] = field(default_factory=list)
    complete: Message | None = None

    @property
    def ok(self) -> bool:
        return self.response.name.lower() in _OK_RESPONSES

    @property
    def message(self) -> str:
        return self.response.get("Message", "") or ""


class _Pending:
    __slots__ = ("action_id", "events", "future", "name", "on_complete", "response")

    def __init__(
        self,
        action_id: str,
        name: str,
        future: asyncio.Future[ActionResult],
        on_complete: Callable[[ActionResult], None] | None,
    ) -> None:
        self.action_id = action_id
        self.name = name
        self.future = future
        self.on_complete = on_complete
        self.response: Message | None = None  # set once a list response has started
        self.events: list[Message] = []


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = FrameParser()
        self.pending: dict[str, _Pending] = {}
        self.banner = asyncio.Event()
        self.closed = False

    def fail_all(self, reason: str) -> None:
        self.closed = True
        for p in list(self.pending.values()):
            if not p.future.done():
                p.future.set_exception(AmiDisconnected(f"{p.name} {p.action_id}: {reason}"))
        self.pending.clear()

    def abort(self) -> None:
        self.closed = True
        self.writer.transport.abort()


class AmiClient:
    """Holds one AMI session to one Asterisk, reconnecting with capped backoff plus jitter.

    Pending actions fail with AmiDisconnected when the session drops and are never re-sent.
    After every successful login the channel list (CoreShowChannels) is handed to the
    `on_resync` callbacks, in stream order with the events, so a channel table can
    reconcile what changed while it was away.
    """

    def __init__(
        self,
        settings: AmiSettings,
        *,
        rng: random.Random | None = None,
        sleep: Sleep | None = None,
        logger: Any = None,
    ) -> None:
        self._settings = settings
        self._rng = rng if rng is not None else random.Random()
        self._sleep: Sleep = sleep if sleep is not None else asyncio.sleep
        base_log = logger if logger is not None else structlog.get_logger(__name__)
        self._log = base_log.bind(asterisk=settings.name)
        self._id_prefix = f"cg-{secrets.token_hex(4)}"
        self._ids = itertools.count(1)
        self._conn: _Connection | None = None
        self._logged_in = False
        self.logins = 0  # successful logins so far: tells a table's resync is of this one
        self._ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._auth_error: AmiAuthError | None = None  # the latest attempt was refused
        self._last_auth_error: AmiAuthError | None = None
        self._auth_failures = 0
        self._last_error: str = "not started"
        self._subs: dict[str, dict[int, EventCallback]] = {}
        self._resync_cbs: dict[int, ResyncCallback] = {}
        self._tokens = itertools.count(1)
        self._dispatch = SerialDispatcher(self._log, "ami_callback_failed")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.banner: str | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def settings(self) -> AmiSettings:
        return self._settings

    @property
    def logged_in(self) -> bool:
        return self._logged_in

    def start(self) -> None:
        if self._task is not None:
            return
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"ami-{self._settings.name}"
        )

    async def wait_ready(self, timeout: float) -> None:
        """Wait for a logged-in, resynced session.

        Raises AmiAuthError at once when the latest login attempt was refused, or as soon
        as one is refused while waiting (the client keeps retrying in the background, so
        a fixed secret is picked up), and AmiTimeout naming the last connection error.
        """
        if self._task is None:
            raise AmiNotConnected("AmiClient.start() was not called")
        if self._ready.is_set():
            return
        if self._auth_error is not None:
            raise self._auth_error
        failures_before = self._auth_failures
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AmiTimeout(
                    f"AMI {self._settings.name} not ready after {timeout}s: {self._last_error}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
            if self._ready.is_set():
                return
            if self._auth_failures > failures_before and self._last_auth_error is not None:
                raise self._last_auth_error

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._dispatch.close()

    async def drain_callbacks(self) -> None:
        """Wait until queued coroutine callbacks have run."""
        await self._dispatch.drain()

    # -- subscriptions -----------------------------------------------------------------

    def subscribe(self, name: str, callback: EventCallback) -> Callable[[], None]:
        """Call `callback(msg)` for events named `name` (case-insensitive) or `*` for all."""
        key = name.lower()
        token = next(self._tokens)
        self._subs.setdefault(key, {})[token] = callback

        def unsubscribe() -> None:
            self._subs.get(key, {}).pop(token, None)

        return unsubscribe

    def on_resync(self, callback: ResyncCallback) -> Callable[[], None]:
        """Call `callback(items)` with the CoreShowChannel events after each login."""
        token = next(self._tokens)
        self._resync_cbs[token] = callback

        def unsubscribe() -> None:
            self._resync_cbs.pop(token, None)

        return unsubscribe

    # -- actions -----------------------------------------------------------------------

    async def action(
        self,
        name: str,
        fields: Fields = (),
        timeout: float | None = None,
    ) -> ActionResult:
        """Send one action on the current session and wait for its (list) answer.

        `Response: Error` is returned, not raised (check `.ok`): callers often expect it,
        e.g. Hangup of a channel that is already gone answers `No such channel`.
        """
        conn = self._conn
        if conn is None or not self._logged_in or conn.closed:
            raise AmiNotConnected(f"AMI {self._settings.name} is not logged in, {name} not sent")
        return await self._request(conn, name, fields, timeout)

    async def command(self, cli: str, timeout: float | None = None) -> list[str]:
        """Run a CLI command; both the `Output:` (Asterisk 14+) and `Follows` styles work."""
        result = await self.action("Command", [("Command", cli)], timeout)
        if not result.ok:
            raise AmiActionError("Command", result.response)
        return result.response.get_all("Output")

    def next_action_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    async def _request(
        self,
        conn: _Connection,
        name: str,
        fields: Fields,
        timeout: float | None,
        on_complete: Callable[[ActionResult], None] | None = None,
    ) -> ActionResult:
        action_id = self.next_action_id()
        data = encode_action(name, fields, action_id)
        if conn.closed:
            raise AmiDisconnected(f"{name} {action_id}: connection closed")
        future: asyncio.Future[ActionResult] = asyncio.get_running_loop().create_future()
        conn.pending[action_id] = _Pending(action_id, name, future, on_complete)
        limit = timeout if timeout is not None else self._settings.action_timeout
        try:
            conn.writer.write(data)
            async with asyncio.timeout(limit):
                await conn.writer.drain()
                return await future
        except TimeoutError:
            self._log.warning("ami_action_timeout", action=name, action_id=action_id, timeout=limit)
            raise AmiTimeout(f"{name} {action_id}: no answer within {limit}s") from None
        except (ConnectionError, OSError) as exc:
            raise AmiDisconnected(f"{name} {action_id}: {exc!r}") from exc
        finally:
            conn.pending.pop(action_id, None)

    # -- session -----------------------------------------------------------------------

    def backoff_delay(self, attempt: int) -> float:
        """reconnect_min * 2**attempt, capped at reconnect_max, minus up to 20 % jitter."""
        s = self._settings
        base = min(s.reconnect_max, s.reconnect_min * (2.0 ** min(attempt, 32)))
        return base * (1.0 - 0.2 * self._rng.random())

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            logged_in = False
            try:
                logged_in = await self._session()
            except AmiAuthError:
                pass  # logged and recorded in _login
            except (OSError, TimeoutError, AmiError) as exc:
                self._last_error = repr(exc)
                self._log.warning("ami_connect_failed", error=repr(exc))
                self._notify()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._last_error = repr(exc)
                self._log.exception("ami_session_crashed")
                self._notify()
            if self._closing:
                return
            if logged_in:
                attempt = 0
            delay = self.backoff_delay(attempt)
            attempt += 1
            self._log.info("ami_reconnecting", delay=round(delay, 3), attempt=attempt)
            await self._sleep(delay)

    async def _session(self) -> bool:
        """Run one connection until it ends; returns whether it got logged in."""
        s = self._settings
        self._auth_error = None  # a new attempt: its outcome is not known yet
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(s.host, s.port, limit=_READ_SIZE), s.connect_timeout
        )
        conn = _Connection(reader, writer)
        self._conn = conn
        reader_task = asyncio.create_task(self._read_loop(conn))
        ping_task: asyncio.Task[None] | None = None
        logged_in = False
        try:
            banner_wait = asyncio.create_task(conn.banner.wait())
            await asyncio.wait(
                {banner_wait, reader_task},
                timeout=s.connect_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            banner_wait.cancel()
            if not conn.banner.is_set():
                raise AmiError("connected but no AMI banner")
            self.banner = conn.parser.banner
            self._log.info("ami_connected", banner=self.banner, host=s.host, port=s.port)
            await self._login(conn)
            logged_in = True
            ping_task = asyncio.create_task(self._keepalive(conn))
            await self._resync(conn)
            self._ready.set()
            self._notify()
            await reader_task
            self._last_error = "connection closed by Asterisk"
            return True
        finally:
            was_ready = self._logged_in
            self._logged_in = False
            self._ready.clear()
            conn.abort()
            conn.fail_all("AMI connection lost")
            for task in (ping_task, reader_task):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if self._conn is conn:
                self._conn = None
            if self._closing:
                self._log.info("ami_closed")
            elif was_ready or logged_in:
                self._log.warning("ami_disconnected")

    async def _login(self, conn: _Connection) -> None:
        s = self._settings
        # Asterisk answers a refused Login only after ~1 s: allow for it.
        result = await self._request(
            conn,
            "Login",
            [("Username", s.username), ("Secret", s.secret)],
            max(s.action_timeout, s.connect_timeout),
        )
        if not result.ok:
            reason = result.message or result.response.name
            err = AmiAuthError(f"AMI {s.name} login as {s.username!r} refused: {reason}")
            self._auth_error = self._last_auth_error = err
            self._auth_failures += 1
            self._last_error = str(err)
            self._log.error("ami_login_failed", username=s.username, reason=reason)
            self._notify()
            raise err
        self._auth_error = None
        self._logged_in = True
        self.logins += 1
        self._log.info("ami_logged_in", username=s.username)

    async def _resync(self, conn: _Connection) -> None:
        try:
            result = await self._request(
                conn, "CoreShowChannels", (), None, on_complete=self._deliver_resync
            )
        except (AmiTimeout, AmiDisconnected) as exc:
            self._log.warning("ami_resync_failed", error=str(exc))
            return
        if not result.ok:
            self._log.warning("ami_resync_failed", error=result.message)

    def _deliver_resync(self, result: ActionResult) -> None:
        if not result.ok:
            return
        self._log.info("ami_resync", channels=len(result.events))
        for token, cb in list(self._resync_cbs.items()):
            self._dispatch.deliver(("resync", token), cb, list(result.events))

    async def _keepalive(self, conn: _Connection) -> None:
        while not conn.closed:
            await asyncio.sleep(self._settings.ping_interval)
            try:
                await self._request(conn, "Ping", (), None)
            except AmiTimeout:
                self._log.warning("ami_ping_timeout", timeout=self._settings.action_timeout)
                self._last_error = "keep-alive Ping unanswered (half-open socket)"
                conn.abort()
                return
            except AmiDisconnected:
                return

    async def _read_loop(self, conn: _Connection) -> None:
        try:
            while True:
                data = await conn.reader.read(_READ_SIZE)
                if not data:
                    break
                for msg in conn.parser.feed(data):
                    try:
                        self._handle(conn, msg)
                    except Exception:
                        self._log.exception("ami_frame_handling_failed", frame=msg.name)
                if conn.parser.banner is not None and not conn.banner.is_set():
                    conn.banner.set()
        except (ConnectionError, OSError) as exc:
            self._log.info("ami_read_failed", error=repr(exc))
        finally:
            conn.fail_all("AMI connection lost")

    def _handle(self, conn: _Connection, msg: Message) -> None:
        if msg.is_response:
            aid = msg.action_id
            pending = conn.pending.get(aid) if aid else None
            if pending is None:
                self._log.debug("ami_unmatched_response", action_id=aid, response=msg.name)
                return
            if (msg.get("EventList") or "").lower() == "start":
                pending.response = msg
                return
            self._resolve(conn, pending, ActionResult(msg))
        elif msg.is_event:
            aid = msg.action_id
            pending = conn.pending.get(aid) if aid else None
            if pending is not None and pending.response is not None:
                if (msg.get("EventList") or "").lower() == "complete":
                    self._resolve(
                        conn, pending, ActionResult(pending.response, pending.events, msg)
                    )
                else:
                    pending.events.append(msg)
                return
            self._deliver_event(msg)
        else:
            self._log.warning("ami_frame_unexpected", headers=msg.to_dict())

    def _resolve(self, conn: _Connection, pending: _Pending, result: ActionResult) -> None:
        conn.pending.pop(pending.action_id, None)
        if pending.on_complete is not None:
            try:
                pending.on_complete(result)
            except Exception:
                self._log.exception("ami_callback_failed", action=pending.name)
        if not pending.future.done():
            pending.future.set_result(result)

    def _deliver_event(self, msg: Message) -> None:
        name = msg.name.lower()
        for key in (name, "*"):
            subs = self._subs.get(key)
            if not subs:
                continue
            for token, cb in list(subs.items()):
                self._dispatch.deliver(token, cb, msg)

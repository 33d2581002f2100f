"""The wallboard's HTTP routes on the daemon's aiohttp application.

| route                          | what                                                   |
|--------------------------------|--------------------------------------------------------|
| `GET /wallboard`               | the page (signed in) or the sign-in page (401)         |
| `GET /wallboard?token=...`     | sign in: sets the cookie, redirects to `/wallboard`    |
| `POST /wallboard`              | sign in from the form (`token=` in the body)           |
| `GET /wallboard/events`        | Server-Sent Events: one JSON snapshot per interval     |
| `GET /wallboard/snapshot`      | one snapshot as JSON (scripts; bearer header accepted) |
| `GET /wallboard/logout`        | forget the cookie                                      |
| `GET /wallboard/static/{name}` | the page's own script, chart and style (no CDN)        |

Every asset ships in this package (gateway/wallboard/assets); the Content-Security-Policy
lets the page load nothing from anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
from importlib import resources
from typing import Any

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from gateway.api.tokens import TokenInfo
from gateway.wallboard import access
from gateway.wallboard.deps import WallboardDeps
from gateway.wallboard.sample import SiteSampler
from gateway.wallboard.view import snapshot

PAGE = "/wallboard"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
_STATIC = ("wallboard.js", "chart.js", "wallboard.css")
_SECURITY = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_SIGN_IN = {
    "": "Paste an API token (callgate token create) to open the wallboard.",
    "invalid": "That token is unknown, revoked or malformed.",
    "expired": "Your token is no longer valid (revoked?): sign in again.",
    "backend": "The gateway's database (Redis) did not answer; try again in a moment.",
}


def mount_wallboard(app: web.Application, deps: WallboardDeps) -> None:
    """Add the wallboard routes to `app`; call before the application starts."""
    board = _Wallboard(deps)
    app.router.add_get(PAGE, board.page)
    app.router.add_post(PAGE, board.sign_in_form)
    app.router.add_get(PAGE + "/events", board.events)
    app.router.add_get(PAGE + "/snapshot", board.snapshot)
    app.router.add_get(PAGE + "/logout", board.logout)
    app.router.add_get(PAGE + "/static/{name}", board.static)
    app.on_shutdown.append(board.on_shutdown)


def _assets() -> dict[str, bytes]:
    folder = resources.files("gateway.wallboard.assets")
    return {name: (folder / name).read_bytes() for name in (*_STATIC, "page.html",
                                                             "sign_in.html")}


class _Wallboard:
    def __init__(self, deps: WallboardDeps) -> None:
        self._deps = deps
        self._log = deps.log if deps.log is not None else structlog.get_logger(__name__)
        self._sampler = SiteSampler(deps)
        self._assets = _assets()
        self._stopping = asyncio.Event()

    # -- pages --------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        from_query = bool(request.query.get("token", "").strip())
        token = access.token_of(request)
        try:
            principal = await access.viewer(self._deps.tokens(), token)
        except (RedisError, OSError) as exc:
            self._log.warning("wallboard_backend_unavailable", error=str(exc))
            return self._sign_in_page("backend", 503)
        if principal is None:
            if token:
                self._log.info("wallboard_refused", reason="token_invalid")
            reply = self._sign_in_page("invalid" if from_query else
                                       ("expired" if token else ""), 401)
            if token and not from_query:
                access.forget(reply)
            return reply
        if from_query:
            return self._signed_in(request, token, principal)
        return self._html(self._assets["page.html"], 200)

    async def sign_in_form(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        token = str(form.get("token", "")).strip()
        try:
            principal = await access.viewer(self._deps.tokens(), token)
        except (RedisError, OSError) as exc:
            self._log.warning("wallboard_backend_unavailable", error=str(exc))
            return self._sign_in_page("backend", 503)
        if principal is None:
            self._log.info("wallboard_refused", reason="token_invalid")
            return self._sign_in_page("invalid", 401)
        return self._signed_in(request, token, principal)

    async def logout(self, request: web.Request) -> web.StreamResponse:
        reply = _see_other()
        access.forget(reply)
        return reply

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        suffix = name[name.rindex("."):]
        return web.Response(body=self._assets[name], content_type=_TYPES[suffix],
                            charset="utf-8", headers={**_SECURITY, "Cache-Control": "no-cache"})

    # -- data ---------------------------------------------------------------------------

    async def snapshot(self, request: web.Request) -> web.StreamResponse:
        principal, refused = await self._authorize(request)
        if principal is None:
            assert refused is not None
            return refused
        try:
            body = await snapshot(principal, self._deps, self._sampler)
        except Exception:
            self._log.exception("wallboard_snapshot_failed")
            return _json_error(500, "internal_error",
                               "the snapshot failed (logged as wallboard_snapshot_failed)")
        return web.json_response(body, headers=_SECURITY)

    async def events(self, request: web.Request) -> web.StreamResponse:
        principal, refused = await self._authorize(request)
        if principal is None:
            assert refused is not None
            return refused
        token = access.token_of(request)
        log = self._log.bind(token_id=principal.token_id, viewer_tenant=principal.tenant)
        stream = web.StreamResponse(headers={
            **_SECURITY, "Content-Type": "text/event-stream", "X-Accel-Buffering": "no",
        })
        await stream.prepare(request)
        log.info("wallboard_opened", role=principal.role.value)
        try:
            await stream.write(b"retry: 2000\n\n")
            await self._feed(stream, token, log)
        except ConnectionError:
            log.info("wallboard_closed", by="viewer")
            return stream
        log.info("wallboard_closed", by="gateway")
        return stream

    async def _feed(self, stream: web.StreamResponse, token: str, log: Any) -> None:
        tokens = self._deps.tokens()
        while not self._stopping.is_set():
            try:
                now = await access.viewer(tokens, token)
            except (RedisError, OSError) as exc:
                log.warning("wallboard_backend_unavailable", error=str(exc))
                await stream.write(_event("unavailable", {"errors": {
                    "tokens": "the gateway's database (Redis) did not answer"}}))
            else:
                if now is None:
                    log.info("wallboard_refused", reason="token_revoked")
                    await stream.write(_event("revoked", {}))
                    return
                try:
                    body = await snapshot(now, self._deps, self._sampler)
                except Exception:
                    log.exception("wallboard_snapshot_failed")
                    await stream.write(_event("unavailable", {"errors": {
                        "wallboard": "the snapshot failed (logged as wallboard_snapshot_failed)"
                    }}))
                else:
                    await stream.write(_event(None, body))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._deps.interval):
                    await self._stopping.wait()

    async def on_shutdown(self, _app: web.Application) -> None:
        """End the live feeds so the daemon's HTTP server stops without waiting on them."""
        self._stopping.set()

    # -- helpers ------------------------------------------------------------------------

    async def _authorize(self, request: web.Request) -> tuple[TokenInfo | None,
                                                              web.StreamResponse | None]:
        try:
            principal = await access.viewer(self._deps.tokens(), access.token_of(request))
        except (RedisError, OSError) as exc:
            self._log.warning("wallboard_backend_unavailable", error=str(exc))
            return None, _json_error(503, "backend_unavailable",
                                     "the gateway's database (Redis) did not answer")
        if principal is None:
            self._log.info("wallboard_refused", reason="token_missing_or_invalid",
                           path=request.path)
            return None, _json_error(401, "token_invalid",
                                     "open /wallboard?token=<API token> to sign in")
        return principal, None

    def _signed_in(self, request: web.Request, token: str,
                   principal: TokenInfo) -> web.StreamResponse:
        self._log.info("wallboard_signed_in", token_id=principal.token_id,
                       viewer_tenant=principal.tenant, role=principal.role.value)
        reply = _see_other()
        access.remember(reply, token, secure=request.secure)
        return reply

    def _sign_in_page(self, why: str, status: int) -> web.Response:
        text = self._assets["sign_in.html"].decode().replace(
            "{{message}}", html.escape(_SIGN_IN[why]))
        return self._html(text.encode(), status)

    @staticmethod
    def _html(body: bytes, status: int) -> web.Response:
        return web.Response(body=body, status=status, content_type="text/html",
                            charset="utf-8", headers=_SECURITY)


def _see_other() -> web.Response:
    return web.Response(status=303, headers={**_SECURITY, "Location": PAGE})


def _event(name: str | None, body: dict[str, Any]) -> bytes:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


def _json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers=_SECURITY)

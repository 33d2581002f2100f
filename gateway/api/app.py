"""Mounting the /v1/ API on the daemon's aiohttp application.

Every request goes through the same steps, in this order, before its handler runs:
token (401) -> role (403 role_forbidden) -> path and query parameters (422) -> tenant
scope (403 site_token_required / tenant_forbidden) -> services configured (503) -> JSON
body (422). A handler therefore only sees a caller allowed to do what it asks and input
that matches the published schema; it validates what depends on stored state before its
first write, so a refused request changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from redis.exceptions import RedisError

from gateway.api.access import Scope, TenantAccess, parents_from_limits
from gateway.api.deps import ApiDeps
from gateway.api.errors import ApiError, forbidden, invalid, unavailable
from gateway.api.resources import DEFAULT_ROUTES
from gateway.api.routes import Reply, RequestContext, Route
from gateway.api.tokens import TokenInfo
from gateway.api.validation import coerce_param, validate
from limits import BackendUnavailable, InvalidLimit, InvalidName

API_ROUTES = web.AppKey("callgate_api_routes", tuple[Route, ...])
API_PREFIX = "/v1/"


def mount_api(app: web.Application, deps: ApiDeps, *,
              extra_routes: Iterable[Route] = ()) -> tuple[Route, ...]:
    """Add every /v1/ route (the defaults plus `extra_routes`) to `app`; returns them.
    Call before the application starts."""
    routes = (*DEFAULT_ROUTES, *extra_routes)
    seen: set[tuple[str, str]] = set()
    names: set[str] = set()
    for route in routes:
        key = (route.method, route.path)
        if key in seen or route.name in names:
            raise ValueError(f"route declared twice: {route.method} {route.path} "
                             f"({route.name})")
        seen.add(key)
        names.add(route.name)
    log = deps.log if deps.log is not None else structlog.get_logger(__name__)
    for route in routes:
        app.router.add_route(route.method, route.path, _endpoint(route, routes, deps, log))
    app[API_ROUTES] = routes
    app.middlewares.append(_json_http_errors)
    return routes


def _endpoint(route: Route, routes: tuple[Route, ...], deps: ApiDeps,
              log: Any) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        bound = log.bind(route=route.name, method=route.method, path=request.path)
        try:
            ctx = await _prepare(request, route, routes, deps, bound)
            reply: Reply = await route.handler(ctx)
        except ApiError as exc:
            _log_refusal(bound, exc)
            return exc.response()
        except (BackendUnavailable, RedisError, ConnectionError, TimeoutError) as exc:
            bound.warning("api_backend_unavailable", error=str(exc))
            return unavailable("backend_unavailable",
                               "the gateway's database (Redis) did not answer; nothing was "
                               "changed by this request if it had not answered before, "
                               "retry").response()
        except (InvalidLimit, InvalidName) as exc:
            bound.warning("api_request_invalid", code="invalid_limit", error=str(exc))
            return invalid("invalid_limit", str(exc)).response()
        except Exception:
            bound.exception("api_internal_error")
            return ApiError(500, "internal_error",
                            "the gateway failed to handle this request; it is logged "
                            "as api_internal_error").response()
        if reply.text is not None:
            return web.Response(text=reply.text, status=reply.status,
                                content_type=reply.content_type, charset="utf-8")
        return web.json_response(reply.body, status=reply.status)

    return handle


def _log_refusal(log: Any, exc: ApiError) -> None:
    event = {401: "api_unauthorized", 403: "api_forbidden", 404: "api_not_found",
             422: "api_request_invalid", 503: "api_service_unavailable"}.get(
                 exc.status, "api_error")
    log.info(event, code=exc.code, field=exc.field, status=exc.status)


async def _prepare(request: web.Request, route: Route, routes: tuple[Route, ...],
                   deps: ApiDeps, log: Any) -> RequestContext:
    principal: TokenInfo | None = None
    if route.scope is not Scope.PUBLIC:
        principal = await _authenticate(request, deps)
        log = log.bind(token_id=principal.token_id, caller_tenant=principal.tenant)
        if principal.role not in route.roles:
            allowed = ", ".join(sorted(r.value for r in route.roles))
            raise forbidden("role_forbidden", f"a {principal.role.value} token may not "
                            f"{route.method} {route.path} (allowed: {allowed})")
    path = {name: coerce_param(p.schema, request.match_info[name], name)
            for name, p in route.path_params.items()}
    query = _query(request, route)
    access = await _scope(route, deps, principal, path, query)
    missing = deps.missing(route.needs)
    if missing is not None:
        raise unavailable(f"{missing}_unavailable",
                          f"this gateway has no {missing} service configured or running")
    body = await _body(request, route)
    return RequestContext(request, deps, route, routes, principal, access, path, query,
                          body, log)


async def _authenticate(request: web.Request, deps: ApiDeps) -> TokenInfo:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(401, "token_missing",
                       "send the header 'Authorization: Bearer <token>'")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "token_invalid", "the Authorization header must be "
                       "'Bearer <token>'")
    principal = await deps.tokens().authenticate(token.strip())
    if principal is None:
        raise ApiError(401, "token_invalid", "the token is unknown, revoked or malformed")
    return principal


def _query(request: web.Request, route: Route) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for name in request.query:
        if name not in route.query:
            known = ", ".join(route.query) or "none"
            raise invalid("field_unknown", f"unknown query parameter {name!r} "
                          f"(known: {known})", name)
        values = request.query.getall(name)
        if len(values) > 1:
            raise invalid("field_type", f"query parameter {name!r} given more than once",
                          name)
        query[name] = coerce_param(route.query[name].schema, values[0], name)
    for name, p in route.query.items():
        if p.required and name not in query:
            raise invalid("field_required", f"query parameter {name!r} is required", name)
    return query


async def _scope(route: Route, deps: ApiDeps, principal: TokenInfo | None,
                 path: dict[str, Any], query: dict[str, Any]) -> TenantAccess | None:
    if principal is None:
        return None
    if route.scope is Scope.SITE and not principal.site_wide:
        raise forbidden("site_token_required",
                        f"{route.method} {route.path} concerns the whole site: it needs a "
                        "site-wide token (tenant '*')")
    lookup = None if deps.limits is None else parents_from_limits(deps.limits.settings)
    access = TenantAccess(principal, lookup)
    if route.scope is Scope.TENANT:
        tenant = path["tenant"]
        if not await access.may_read(tenant):
            raise forbidden("tenant_forbidden",
                            f"this token may not see tenant {tenant!r}", "tenant")
        if route.writes and not route.tenant_writes and not await access.may_write(tenant):
            raise forbidden("tenant_forbidden",
                            f"this token may read but not change tenant {tenant!r}: limits "
                            "are changed by the site or by the tenant's reseller", "tenant")
    if route.scope is Scope.FILTERED:
        tenant = query.get("tenant")
        if tenant is not None and not await access.may_read(tenant):
            raise forbidden("tenant_forbidden",
                            f"this token may not see tenant {tenant!r}", "tenant")
    return access


async def _body(request: web.Request, route: Route) -> Any:
    if route.body is None:
        return None
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "body_too_large", "the request body is too large") from None
    if not raw.strip():
        raise invalid("body_required", "this request needs a JSON body")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid("invalid_json", f"the body is not valid JSON: {exc}") from None
    validate(route.body, body)
    return body


@web.middleware
async def _json_http_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown /v1/ paths and methods answer in the API's error shape, not aiohttp's
    HTML-ish text."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith(API_PREFIX) or exc.status < 400:
            raise
        if exc.status == 404:
            error = ApiError(404, "route_not_found", f"no API route {request.path}")
        elif exc.status == 405:
            error = ApiError(405, "method_not_allowed",
                             f"{request.method} is not allowed on {request.path}")
        else:
            error = ApiError(exc.status, "http_error", exc.reason)
        response = error.response()
        allow = exc.headers.get("Allow")
        if allow:
            response.headers["Allow"] = allow
        return response

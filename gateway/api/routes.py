"""The route-declaration layer: each /v1/ route is declared once, and both the aiohttp
handler (authentication, role, tenant scoping, validation) and the OpenAPI document are
built from that declaration, so what is documented is what is enforced.

A resource module (limits, calls, hardware; later cards, vouchers, rates, CDRs,
campaigns) exports a tuple `ROUTES` of `Route`s whose handlers take a `RequestContext`
and return a `Reply`; `mount_api` registers them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from aiohttp import web

from gateway.api.access import Scope, TenantAccess
from gateway.api.deps import ApiDeps
from gateway.api.errors import ApiError, forbidden
from gateway.api.tokens import Role, TokenInfo
from gateway.api.validation import Schema, check_supported, validate

METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH")
ALL_ROLES = frozenset(Role)
_PATH_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Reply:
    body: Any
    status: int = 200
    # A non-JSON answer (CSV, JSON lines): sent as is with this content type; `body` unused.
    text: str | None = None
    content_type: str = "application/json"


@dataclass(frozen=True)
class Param:
    """A path or query parameter. `example` is used by the document and by the tests that
    call every route."""

    schema: Schema
    description: str
    example: Any
    required: bool = False  # query parameters only; path parameters always are


Handler = Callable[["RequestContext"], Awaitable[Reply]]


def _empty() -> Mapping[str, Param]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str  # the OpenAPI operationId; unique
    summary: str
    tag: str
    handler: Handler
    roles: frozenset[Role]
    scope: Scope
    response: Schema
    status: int = 200
    description: str = ""
    path_params: Mapping[str, Param] = field(default_factory=_empty)
    query: Mapping[str, Param] = field(default_factory=_empty)
    body: Schema | None = None
    body_example: Any = None
    needs: tuple[str, ...] = ()  # ApiDeps fields that must not be None (else 503)
    not_found: bool = False  # may answer 404 for what the path names
    conflict: bool = False  # may answer 409: the thing's state forbids the change
    # Other content types the answer may come in besides JSON (picked by a query parameter,
    # e.g. ?format=csv): documented as text bodies.
    media: tuple[str, ...] = ()
    # Tenant-owned working data (cards, campaigns, leads): the tenant's own tokens may
    # change it too, not only the site and the tenant's reseller (as for limits).
    tenant_writes: bool = False

    def __post_init__(self) -> None:
        where = f"{self.method} {self.path}"
        if self.method not in METHODS:
            raise ValueError(f"{where}: method must be one of {METHODS}")
        if not self.path.startswith("/v1/"):
            raise ValueError(f"{where}: API routes start with /v1/")
        if set(_PATH_PARAM_RE.findall(self.path)) != set(self.path_params):
            raise ValueError(f"{where}: path parameters and path_params differ")
        if (self.scope is Scope.PUBLIC) != (not self.roles):
            raise ValueError(f"{where}: public routes have no roles, the others at least one")
        if self.scope is Scope.TENANT and "tenant" not in self.path_params:
            raise ValueError(f"{where}: a tenant-scoped route names {{tenant}} in its path")
        if self.scope is Scope.FILTERED and "tenant" not in self.query:
            raise ValueError(f"{where}: a filtered list declares the ?tenant= parameter")
        if self.writes and self.scope not in (Scope.TENANT, Scope.SITE):
            raise ValueError(f"{where}: a change must be tenant-scoped or site-only")
        if self.tenant_writes and not (self.writes and self.scope is Scope.TENANT):
            raise ValueError(f"{where}: tenant_writes is for changes of tenant-scoped data")
        for name, param in (*self.path_params.items(), *self.query.items()):
            check_supported(param.schema, f"{where} {name}")
            _check_example(param.schema, param.example, f"{where} {name}")
        check_supported(self.response, f"{where} response")
        if self.body is not None:
            check_supported(self.body, f"{where} body")
            _check_example(self.body, self.body_example, f"{where} body")

    @property
    def writes(self) -> bool:
        return self.method != "GET"


def _check_example(schema: Schema, example: Any, where: str) -> None:
    try:
        validate(schema, example)
    except ApiError as exc:
        raise ValueError(f"{where}: example does not validate: {exc.message}") from None


@dataclass
class RequestContext:
    request: web.Request
    deps: ApiDeps
    route: Route
    routes: tuple[Route, ...]
    principal: TokenInfo | None
    access: TenantAccess | None
    path: dict[str, Any]
    query: dict[str, Any]
    body: Any
    log: Any

    @property
    def caller(self) -> TokenInfo:
        if self.principal is None:  # pragma: no cover - public routes do not ask
            raise RuntimeError("route is public: no caller")
        return self.principal

    @property
    def tenants(self) -> TenantAccess:
        if self.access is None:  # pragma: no cover - set for every authenticated route
            raise RuntimeError("route is public: no tenant access")
        return self.access

    def tenant_filter(self) -> str | None:
        """For lists: the one tenant asked for (?tenant=, already checked readable), else
        the one tenant the token sees, else None (filter with `tenants.may_read`)."""
        asked = self.query.get("tenant")
        return asked if asked is not None else self.tenants.single_tenant

    def refuse_field_unless_site(self, field_name: str) -> None:
        if field_name in (self.body or {}) and not self.caller.site_wide:
            raise forbidden("field_forbidden",
                            f"only a site-wide token may set {field_name!r}", field_name)

"""The HTTP JSON API under /v1/: bearer tokens with a role and a tenant, routes declared
once (gateway.api.routes) from which both the handlers and the OpenAPI document at
/v1/openapi.json are built, and one module per resource (gateway.api.resources)."""

from gateway.api.access import Scope, TenantAccess
from gateway.api.app import API_ROUTES, mount_api
from gateway.api.deps import ApiDeps
from gateway.api.errors import ApiError
from gateway.api.live_calls import LiveCall, LiveCallsProvider, live_calls_from_tables
from gateway.api.openapi import build_openapi
from gateway.api.routes import Param, Reply, RequestContext, Route
from gateway.api.tokens import (
    SITE_WIDE,
    InvalidToken,
    Role,
    TokenInfo,
    TokenStore,
    create_token,
    list_tokens,
    revoke_token,
)

__all__ = [
    "API_ROUTES",
    "SITE_WIDE",
    "ApiDeps",
    "ApiError",
    "InvalidToken",
    "LiveCall",
    "LiveCallsProvider",
    "Param",
    "Reply",
    "RequestContext",
    "Role",
    "Route",
    "Scope",
    "TenantAccess",
    "TokenInfo",
    "TokenStore",
    "build_openapi",
    "create_token",
    "list_tokens",
    "live_calls_from_tables",
    "mount_api",
    "revoke_token",
]

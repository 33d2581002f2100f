"""The OpenAPI document and `whoami`: what the API offers and who the caller is."""

from __future__ import annotations

from gateway.api.access import Scope
from gateway.api.openapi import build_openapi
from gateway.api.resources.tokens import TOKEN_INFO
from gateway.api.routes import ALL_ROLES, Reply, RequestContext, Route


async def openapi(ctx: RequestContext) -> Reply:
    return Reply(build_openapi(ctx.routes, site=ctx.deps.site, version=ctx.deps.version))


async def whoami(ctx: RequestContext) -> Reply:
    return Reply({"token": ctx.caller.as_json(), "site_wide": ctx.tenants.site_wide})


ROUTES = (
    Route("GET", "/v1/openapi.json", "openapi", "This document (OpenAPI 3.1)", "meta",
          openapi, frozenset(), Scope.PUBLIC, {"type": "object"}),
    Route("GET", "/v1/whoami", "whoami", "The calling token and the tenants it sees", "meta",
          whoami, ALL_ROLES, Scope.ANY_TOKEN,
          {"type": "object", "required": ["token", "site_wide"],
           "additionalProperties": False,
           "properties": {"token": TOKEN_INFO, "site_wide": {"type": "boolean"}}}),
)


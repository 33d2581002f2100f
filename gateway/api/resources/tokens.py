"""API tokens: created, listed and revoked by a site-wide admin (the CLI does the same
through gateway.api.tokens)."""

from __future__ import annotations

from typing import Any

from gateway.api.access import Scope
from gateway.api.errors import invalid, not_found
from gateway.api.routes import Param, Reply, RequestContext, Route
from gateway.api.tokens import SITE_WIDE, InvalidToken, Role

ADMIN = frozenset({Role.ADMIN})

TOKEN_INFO: dict[str, Any] = {
    "type": "object",
    "required": ["id", "role", "tenant", "created", "label"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string"},
        "role": {"type": "string", "enum": [r.value for r in Role]},
        "tenant": {"type": "string", "description": f"{SITE_WIDE!r} = site-wide"},
        "created": {"type": "number", "description": "epoch seconds"},
        "label": {"type": "string"},
    },
}
NEW_TOKEN: dict[str, Any] = {
    **TOKEN_INFO,
    "required": [*TOKEN_INFO["required"], "token"],
    "properties": {**TOKEN_INFO["properties"],
                   "token": {"type": "string",
                             "description": "the bearer token; shown this once only"}},
}
TOKEN_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["role", "tenant"],
    "additionalProperties": False,
    "properties": {
        "role": {"type": "string", "enum": [r.value for r in Role]},
        "tenant": {"type": "string", "maxLength": 64,
                   "description": "a tenant, or '*' (site-wide: admin and operator only)"},
        "label": {"type": "string", "maxLength": 100,
                  "description": "what the token is for, shown in listings"},
    },
}
REVOKED: dict[str, Any] = {
    "type": "object", "required": ["revoked"], "additionalProperties": False,
    "properties": {"revoked": {"type": "string"}},
}


async def create(ctx: RequestContext) -> Reply:
    body = ctx.body
    try:
        token, info = await ctx.deps.tokens().create(
            body["tenant"], body["role"], label=body.get("label", ""),
            created_by=ctx.caller.token_id)
    except InvalidToken as exc:
        raise invalid("token_invalid_grant", str(exc), exc.field) from None
    return Reply({**info.as_json(), "token": token}, status=201)


async def list_all(ctx: RequestContext) -> Reply:
    return Reply({"tokens": [t.as_json() for t in await ctx.deps.tokens().all_tokens()]})


async def revoke(ctx: RequestContext) -> Reply:
    token_id: str = ctx.path["token_id"]
    if not await ctx.deps.tokens().revoke(token_id):
        raise not_found("token_not_found", f"no token with id {token_id!r}")
    ctx.log.info("api_token_revoked_by", token_id=token_id, by=ctx.caller.token_id)
    return Reply({"revoked": token_id})


ROUTES = (
    Route("POST", "/v1/tokens", "create_token", "Create an API token", "tokens", create,
          ADMIN, Scope.SITE, NEW_TOKEN, status=201,
          description="The token is in the answer once; only its SHA-256 is stored.",
          body=TOKEN_REQUEST,
          body_example={"role": "supervisor", "tenant": "acme", "label": "wallboard"}),
    Route("GET", "/v1/tokens", "list_tokens", "List API tokens (without secrets)", "tokens",
          list_all, ADMIN, Scope.SITE,
          {"type": "object", "required": ["tokens"], "additionalProperties": False,
           "properties": {"tokens": {"type": "array", "items": TOKEN_INFO}}}),
    Route("DELETE", "/v1/tokens/{token_id}", "revoke_token",
          "Revoke an API token (refused from its very next request)", "tokens", revoke,
          ADMIN, Scope.SITE, REVOKED,
          path_params={"token_id": Param({"type": "string", "pattern": "^[0-9a-f]{16}$"},
                                         "The token's id.", "0123456789abcdef")},
          not_found=True),
)

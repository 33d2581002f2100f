"""Bearer tokens of the HTTP API: who is calling, in which role, for which tenant.

A token is `cg_<id>_<secret>`: `id` is 16 hex digits naming it (safe to log and list),
`secret` 64 hex digits of 32 random bytes. Only the SHA-256 of the secret bytes is stored,
so a Redis dump or backup never holds a usable token; a fast hash is enough because the
secret is 256 random bits, not a password anyone could guess.

Redis layout (one hash tag per site, like the limits keys):

| key                                   | type | holds                                   |
|---------------------------------------|------|-----------------------------------------|
| `callgate:{site:S}:api:token:<id>`    | hash | sha256, role, tenant, created, label    |
| `callgate:{site:S}:api:tokens`        | set  | every token id (for listing)            |

Every request reads its token's hash again: nothing is cached, so a revoke (which deletes
the hash) refuses the very next request on every gateway of the site.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from limits import InvalidName, SiteKeys
from limits.scopes import check_name

RedisClient = Redis | RedisCluster

SITE_WIDE = "*"
TOKEN_RE = re.compile(r"^cg_([0-9a-f]{16})_([0-9a-f]{64})$")
TOKEN_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_LABEL_RE = re.compile(r"^[^\x00-\x1f\x7f]{0,100}$")


class Role(StrEnum):
    """admin: everything, tokens included (site-wide). operator: runs the site or a
    tenant. supervisor: watches one tenant. reseller: one tenant and its sub-tenants."""

    ADMIN = "admin"
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    RESELLER = "reseller"

    @property
    def may_be_site_wide(self) -> bool:
        return self in (Role.ADMIN, Role.OPERATOR)


class InvalidToken(ValueError):
    """A token that cannot be created as asked; `field` is role, tenant or label."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed and as attached to a request; never holds the secret."""

    token_id: str
    role: Role
    tenant: str
    created: float
    label: str = ""

    @property
    def site_wide(self) -> bool:
        return self.tenant == SITE_WIDE

    def as_json(self) -> dict[str, Any]:
        return {"id": self.token_id, "role": self.role.value, "tenant": self.tenant,
                "created": self.created, "label": self.label}


def check_grant(role: str, tenant: str) -> Role:
    """The role a token may be created with for `tenant`, or InvalidToken saying why."""
    try:
        parsed = Role(role)
    except ValueError:
        raise InvalidToken(f"role must be one of {', '.join(r.value for r in Role)}, "
                           f"got {role!r}", "role") from None
    if tenant == SITE_WIDE:
        if not parsed.may_be_site_wide:
            raise InvalidToken(f"a {parsed.value} token belongs to one tenant, not to "
                               f"{SITE_WIDE!r} (only admin and operator may be site-wide)",
                               "tenant")
        return parsed
    try:
        check_name("tenant", tenant)
    except InvalidName as exc:
        raise InvalidToken(str(exc), "tenant") from None
    return parsed


class TokenStore:
    def __init__(self, redis: RedisClient, site: str, *,
                 clock: Callable[[], float] = time.time,
                 log: structlog.typing.FilteringBoundLogger | None = None) -> None:
        prefix = SiteKeys(site).prefix + "api:"
        self._redis = redis
        self._index = prefix + "tokens"
        self._prefix = prefix + "token:"
        self._clock = clock
        self._log = log or structlog.get_logger(__name__)

    def _key(self, token_id: str) -> str:
        return self._prefix + token_id

    async def create(self, tenant: str, role: str, *, label: str = "",
                     created_by: str = "") -> tuple[str, TokenInfo]:
        """Returns the token string (shown once, never stored) and its listing entry."""
        parsed = check_grant(role, tenant)
        if not isinstance(label, str) or not _LABEL_RE.match(label):
            raise InvalidToken("label must be at most 100 characters without line breaks",
                               "label")
        token_id = secrets.token_hex(8)
        secret = secrets.token_bytes(32)
        info = TokenInfo(token_id, parsed, tenant, round(self._clock(), 3), label)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._key(token_id), mapping={
            "sha256": _digest(secret), "role": parsed.value, "tenant": tenant,
            "created": repr(info.created), "label": label, "created_by": created_by,
        })
        pipe.sadd(self._index, token_id)
        await pipe.execute()
        self._log.info("api_token_created", token_id=token_id, role=parsed.value,
                       tenant=tenant, created_by=created_by or None)
        return f"cg_{token_id}_{secret.hex()}", info

    async def revoke(self, token: str) -> bool:
        """`token` is the id or the whole token string; True if a token was revoked."""
        token_id = token_id_of(token)
        if token_id is None:
            return False
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._key(token_id))
        pipe.srem(self._index, token_id)
        deleted, _ = await pipe.execute()
        if deleted:
            self._log.info("api_token_revoked", token_id=token_id)
        return bool(deleted)

    async def all_tokens(self) -> list[TokenInfo]:
        ids = sorted(_text(i) for i in await self._redis.smembers(self._index))
        pipe = self._redis.pipeline(transaction=False)
        for token_id in ids:
            pipe.hgetall(self._key(token_id))
        found = []
        for token_id, raw in zip(ids, await pipe.execute(), strict=True):
            info = _info(token_id, raw)
            if info is not None:
                found.append(info)
        return found

    async def authenticate(self, token: str) -> TokenInfo | None:
        """The token's entry if `token` is a live token of this site, else None."""
        match = TOKEN_RE.match(token)
        if match is None:
            return None
        token_id, secret_hex = match.groups()
        raw = await self._redis.hgetall(self._key(token_id))
        fields = {_text(k): _text(v) for k, v in dict(raw).items()}
        stored = fields.get("sha256", "")
        if not stored or not hmac.compare_digest(stored, _digest(bytes.fromhex(secret_hex))):
            return None
        return _info(token_id, raw)


def token_id_of(token: str) -> str | None:
    match = TOKEN_RE.match(token)
    if match is not None:
        return match.group(1)
    return token if TOKEN_ID_RE.match(token) else None


def _digest(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _info(token_id: str, raw: Any) -> TokenInfo | None:
    fields = {_text(k): _text(v) for k, v in dict(raw).items()}
    try:
        return TokenInfo(token_id, Role(fields["role"]), fields["tenant"],
                         float(fields.get("created", "0")), fields.get("label", ""))
    except (KeyError, ValueError):
        return None  # revoked between listing and reading, or not a token hash


# -- for the CLI (`callgate token create|list|revoke`) ------------------------------------

async def create_token(redis: RedisClient, site: str, tenant: str, role: str, *,
                       label: str = "") -> str:
    """A new token; print it once, it cannot be shown again. Raises InvalidToken."""
    token, _ = await TokenStore(redis, site).create(tenant, role, label=label,
                                                    created_by="cli")
    return token


async def revoke_token(redis: RedisClient, site: str, token: str) -> bool:
    """Revoke by id or by the whole token; False if there was no such token."""
    return await TokenStore(redis, site).revoke(token)


async def list_tokens(redis: RedisClient, site: str) -> list[TokenInfo]:
    return await TokenStore(redis, site).all_tokens()

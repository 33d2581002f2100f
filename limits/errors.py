"""Errors raised by the maintenance side of limits/ (authorize and release never raise for
a Redis outage: they follow the configured policy instead)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import RedisError


class BackendUnavailable(Exception):
    """Redis did not answer; the operation did not happen and may be retried."""


class InvalidLimit(ValueError):
    """A limit, hard maximum, pool size or rate that makes no sense."""


@asynccontextmanager
async def backend(what: str) -> AsyncIterator[None]:
    try:
        yield
    except RedisError as exc:
        raise BackendUnavailable(f"{what}: Redis unavailable: {exc}") from exc

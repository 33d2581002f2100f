"""The Redis client types the dialer accepts, and reply decoding.

Replies are read whatever the client's `decode_responses` setting.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

RedisClient = Redis | RedisCluster


def text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


def str_dict(flat: Any) -> dict[str, str]:
    return {text(k): text(v) for k, v in dict(flat or {}).items()}

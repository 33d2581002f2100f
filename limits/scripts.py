"""The Lua scripts of limits/, registered once per client.

redis-py's script objects run EVALSHA and, on NOSCRIPT (a restarted or failed-over Redis
has an empty script cache), load the script and retry: callers never see the difference.
`load()` puts them in the cache up front so the first call does not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

RedisClient = Redis | RedisCluster

_NAMES = ("acquire", "release", "renew", "recount")


def script_text(name: str) -> str:
    return files("limits").joinpath(f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class LimitScripts:
    acquire: AsyncScript
    release: AsyncScript
    renew: AsyncScript
    recount: AsyncScript

    @classmethod
    def register(cls, client: RedisClient) -> LimitScripts:
        return cls(*(client.register_script(script_text(n)) for n in _NAMES))

    async def load(self) -> None:
        for script in (self.acquire, self.release, self.renew, self.recount):
            client: Any = script.registered_client
            script.sha = await client.script_load(script.script)

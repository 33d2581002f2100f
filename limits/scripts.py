"""The Lua scripts of limits/, registered once per client.

redis-py's script objects run EVALSHA and, on NOSCRIPT (a restarted or failed-over Redis
has an empty script cache), load the script and retry: callers never see the difference.
`load()` puts them in the cache up front so the first call does not pay for it.

acquire and release run on every call; on a single server they go through one pipelined
connection (limits/pipelined.py) instead of redis-py's pool, which costs several times
more CPU per call than Redis does. The others stay on redis-py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from limits.pipelined import PipelinedRedis, for_client

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
    pipe: PipelinedRedis | None = None

    @classmethod
    def register(cls, client: RedisClient, *, pipelined: bool = True) -> LimitScripts:
        acquire, release, renew, recount = (client.register_script(script_text(n))
                                            for n in _NAMES)
        return cls(acquire, release, renew, recount,
                   pipe=for_client(client) if pipelined else None)

    async def load(self) -> None:
        for script in (self.acquire, self.release, self.renew, self.recount):
            client: Any = script.registered_client
            script.sha = await client.script_load(script.script)

    async def run_hot(self, script: AsyncScript, keys: Sequence[str],
                      args: Sequence[str | int]) -> Any:
        """acquire or release: idempotent by lease id, so a request cut off with its
        connection may be sent once more."""
        if self.pipe is None:
            return await script(keys=keys, args=args)
        return await self.pipe.evalsha(script.sha, str(script.script), keys, args,
                                       idempotent=True)

    async def close(self) -> None:
        if self.pipe is not None:
            await self.pipe.close()

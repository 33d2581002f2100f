"""The Lua scripts of prepaid, registered once per client.

redis-py's script objects run EVALSHA and, on NOSCRIPT (a restarted Redis has an empty
script cache), load the script and retry, in pipelines too.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

RedisClient = Redis | RedisCluster


def script_text(name: str) -> str:
    return files("prepaid").joinpath(f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class PrepaidScripts:
    card_create: AsyncScript
    card_credit: AsyncScript
    fail_counter: AsyncScript
    voucher_claim: AsyncScript
    session_open: AsyncScript
    debit: AsyncScript
    settle: AsyncScript
    cdr_append: AsyncScript
    answer_seen: AsyncScript

    @classmethod
    def register(cls, client: RedisClient) -> PrepaidScripts:
        return cls(*(client.register_script(script_text(f.name)) for f in fields(cls)))

    async def load(self) -> None:
        for f in fields(self):
            script: AsyncScript = getattr(self, f.name)
            client: Any = script.registered_client
            script.sha = await client.script_load(script.script)


def evalsha(pipe: Any, script: AsyncScript, keys: list[str], args: list[Any]) -> None:
    """Queue a script in a pipeline without redis-py's per-execute SCRIPT EXISTS round trip;
    the caller re-runs what came back NOSCRIPT after `PrepaidScripts.load()`."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def noscript(results: list[Any]) -> list[int]:
    return [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]

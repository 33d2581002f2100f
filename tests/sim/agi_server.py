"""A tiny FastAGI server for tests: reads the env block, sends the commands a decision
function returns, reads each reply, closes. Records every request it saw."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

Decide = Callable[[dict[str, str]], list[str]]


class TinyAgiServer:
    def __init__(self, decide: Decide, stall: float = 0.0) -> None:
        self.decide = decide
        self.stall = stall  # real seconds to sit silent before the first command
        self.requests: list[dict[str, str]] = []
        self.replies: list[list[bytes]] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> TinyAgiServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def url(self, route: str = "authorize") -> str:
        return f"agi://127.0.0.1:{self.port}/{route}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            block = await reader.readuntil(b"\n\n")
            env = {}
            for line in block.decode().splitlines():
                key, _, value = line.partition(": ")
                if key:
                    env[key] = value
            self.requests.append(env)
            if self.stall:
                await asyncio.sleep(self.stall)
            replies: list[bytes] = []
            for command in self.decide(env):
                writer.write(command.encode() + b"\n")
                await writer.drain()
                replies.append(await reader.readline())
            self.replies.append(replies)
        finally:
            writer.close()


def allow(maxsec: int = 0, reason: str = "ok") -> Decide:
    def decide(env: dict[str, str]) -> list[str]:
        return [
            "SET VARIABLE CALLGATE_RESULT ALLOW",
            f"SET VARIABLE CALLGATE_REASON {reason}",
            "SET VARIABLE CALLGATE_LEASE lease-1",
            f"SET VARIABLE CALLGATE_MAXSEC {maxsec}",
        ]

    return decide


def deny(cause: int, reason: str) -> Decide:
    def decide(env: dict[str, str]) -> list[str]:
        return [
            "SET VARIABLE CALLGATE_RESULT DENY",
            f"SET VARIABLE CALLGATE_REASON {reason}",
            f"SET VARIABLE CALLGATE_CAUSE {cause}",
            'SET VARIABLE CALLGATE_LEASE ""',
            "SET VARIABLE CALLGATE_MAXSEC 0",
        ]

    return decide


def gw_auth_ok(env: dict[str, str]) -> list[str]:
    """The recordings' convention (gw-out context)."""
    return ["SET VARIABLE GW_AUTH OK"]

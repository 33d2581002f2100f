"""A redis-server owned by the daemon, for a one-machine set-up with no `[redis] url`.

It listens only on a Unix socket inside the state directory (no TCP port to collide with
or expose), writes an append-only file there, and is stopped with the daemon. Data written
before a restart is there after it, because AOF is replayed on start.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


class OwnedRedisError(Exception):
    pass


class OwnedRedis:
    def __init__(self, state_dir: Path, executable: str = "redis-server") -> None:
        self.dir = state_dir / "redis"
        self.socket_path = self.dir / "redis.sock"
        self._executable = executable
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self, timeout: float = 10.0) -> None:
        exe = shutil.which(self._executable)
        if exe is None:
            raise OwnedRedisError(
                f"no [redis] url is configured and '{self._executable}' is not installed: "
                "install redis-server or set [redis] url"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        self._proc = await asyncio.create_subprocess_exec(
            exe,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                raise OwnedRedisError(
                    f"redis-server exited with code {self._proc.returncode}; "
                    f"see {self.dir / 'redis.log'}"
                )
            if self.socket_path.exists():
                try:
                    _, writer = await asyncio.open_unix_connection(str(self.socket_path))
                except OSError:
                    pass
                else:
                    writer.close()
                    log.info("owned_redis_started", pid=self._proc.pid, dir=str(self.dir))
                    return
            await asyncio.sleep(0.05)
        await self.stop()
        raise OwnedRedisError(f"redis-server did not start within {timeout}s")

    async def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()  # redis flushes the AOF on SIGTERM
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log.error("owned_redis_kill", pid=proc.pid, reason="did not stop on SIGTERM")
            proc.kill()
            await proc.wait()
        log.info("owned_redis_stopped", pid=proc.pid, code=proc.returncode)

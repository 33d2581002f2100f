"""Real redis-server and mosquitto processes for tests, on free loopback ports.

Tests talk to the real servers, never to fakes: the Lua scripts, AOF behaviour and
MQTT QoS semantics under test are the servers' own.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


@dataclass
class RedisServer:
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]
    appendonly: bool

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(10)

    def start(self) -> None:
        """(Re)start on the same port and data dir, so AOF data survives a restart."""
        self.proc = _spawn_redis(self.port, self.workdir, self.appendonly)
        wait_port(self.port)


def _spawn_redis(port: int, workdir: Path, appendonly: bool) -> subprocess.Popen[bytes]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server not installed: run `make test`, which installs it")
    args = [
        exe,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(workdir),
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
        "--appendfsync", "always",
        "--daemonize", "no",
        "--logfile", str(workdir / "redis.log"),
    ]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextmanager
def redis_server(workdir: Path, appendonly: bool = False) -> Iterator[RedisServer]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    srv = RedisServer(port, workdir, _spawn_redis(port, workdir, appendonly), appendonly)
    try:
        wait_port(port)
        yield srv
    finally:
        srv.stop()


@dataclass
class MosquittoServer:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


@contextmanager
def mosquitto_server(workdir: Path) -> Iterator[MosquittoServer]:
    exe = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if exe is None:
        raise RuntimeError("mosquitto not installed: run `make test`, which installs it")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"log_dest file {workdir / 'mosquitto.log'}\n"
    )
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield MosquittoServer(port, proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)

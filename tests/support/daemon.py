"""Run the real `callgate serve` as a subprocess, the way systemd or an operator does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.servers import free_port


@dataclass
class DaemonProcess:
    proc: subprocess.Popen[bytes]
    config_path: Path
    log_path: Path
    http_port: int
    agi_port: int
    extra: dict[str, Any] = field(default_factory=dict)

    def http_get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited with {self.proc.returncode} before ready:\n{self.logs()}"
                )
            try:
                status, _ = self.http_get("/healthz", timeout=0.5)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"daemon not healthy after {timeout}s:\n{self.logs()}")

    def wait_ready(self, timeout: float = 20.0) -> dict[str, Any]:
        self.wait_healthy(timeout)
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status, raw = self.http_get("/readyz")
            body = json.loads(raw)
            if status == 200:
                return body
            time.sleep(0.1)
        raise AssertionError(f"daemon not ready after {timeout}s: {body}\n{self.logs()}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    pass
        return events


def daemon_config(
    tmp: Path,
    *,
    redis_url: str | None = None,
    site: str = "test",
    extra: str = "",
    shutdown_timeout: float = 10.0,
) -> tuple[str, int, int]:
    http_port, agi_port = free_port(), free_port()
    redis = f'[redis]\nurl = "{redis_url}"\n' if redis_url else ""
    text = (
        f'[site]\nname = "{site}"\n\n{redis}\n'
        f'[agi]\nlisten = "127.0.0.1:{agi_port}"\n\n'
        f'[http]\nlisten = "127.0.0.1:{http_port}"\n\n'
        f'[daemon]\nstate_dir = "{tmp / "state"}"\nshutdown_timeout = {shutdown_timeout}\n'
        f'log_format = "json"\nlog_level = "debug"\n\n{extra}'
    )
    return text, http_port, agi_port


@contextmanager
def run_daemon(
    tmp: Path,
    config_text: str,
    http_port: int,
    agi_port: int,
    env: Mapping[str, str] | None = None,
    name: str = "daemon",
) -> Iterator[DaemonProcess]:
    tmp.mkdir(parents=True, exist_ok=True)
    config_path = tmp / f"{name}.toml"
    config_path.write_text(config_text)
    log_path = tmp / f"{name}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
    full_env.pop("NOTIFY_SOCKET", None)
    full_env.update(env or {})
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config_path)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
    dp = DaemonProcess(proc, config_path, log_path, http_port, agi_port)
    try:
        yield dp
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

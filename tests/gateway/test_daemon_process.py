"""The real daemon process, started and stopped the way systemd and an operator do."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

from tests.support.daemon import daemon_config, run_daemon
from tests.support.servers import RedisServer

AGI_ENV = (
    "agi_network: yes\n"
    "agi_network_script: authorize\n"
    "agi_request: agi://127.0.0.1/authorize\n"
    "agi_channel: Local/100@gw-out-00000001;2\n"
    "agi_language: en\n"
    "agi_type: Local\n"
    "agi_uniqueid: 1700000000.42\n"
    "agi_version: 22.10.1\n"
    "agi_callerid: 100\n"
    "agi_calleridname: unknown\n"
    "agi_context: gw-out\n"
    "agi_extension: 100\n"
    "agi_priority: 2\n"
    "agi_enhanced: 0.0\n"
    "agi_accountcode: \n"
    "agi_threadid: 140000000000000\n"
    "agi_arg_1: tenant=acme\n"
    "agi_arg_2: direction=out\n"
    "\n"
)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_misspelt_key_exits_2_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[site]\nname = "x"\n\n[agi]\nlisten = "127.0.0.1:4573"\nmax_conections = 5\n')
    for args in (["serve", "--config", str(cfg)], ["check-config", str(cfg)]):
        proc = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True,
            timeout=30,
        )
        assert proc.returncode == 2, proc
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert f"{cfg}:6:" in lines[0] and "'max_conections'" in lines[0]
        assert "did you mean 'max_connections'" in lines[0]


def test_check_config_accepts_the_example() -> None:
    example = Path(__file__).resolve().parents[2] / "callgate.example.toml"
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", str(example)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


def test_sigterm_lets_inflight_agi_request_finish(tmp_path: Path, redis_proc: RedisServer) -> None:
    text, http_port, agi_port = daemon_config(tmp_path, redis_url=redis_proc.url)
    with run_daemon(tmp_path, text, http_port, agi_port) as daemon:
        daemon.wait_healthy()
        sock = socket.create_connection(("127.0.0.1", agi_port), timeout=10)
        f = sock.makefile("rwb")
        f.write(AGI_ENV.encode())
        f.flush()
        first = f.readline()  # the gateway is now mid-request, waiting for our reply
        assert first.startswith((b"EXEC MSet", b"SET VARIABLE")), first

        daemon.signal(signal.SIGTERM)
        time.sleep(1.0)
        assert daemon.proc.poll() is None, "daemon exited with a request in flight"
        # New connections are no longer accepted while draining.
        try:
            late = socket.create_connection(("127.0.0.1", agi_port), timeout=1)
        except OSError:
            pass
        else:
            late.settimeout(2)
            assert late.recv(100) == b"", "a new AGI connection was served during shutdown"
            late.close()

        commands = [first]
        while True:
            f.write(b"200 result=1\n")
            f.flush()
            line = f.readline()
            if not line:
                break
            commands.append(line)
        sock.close()
        assert daemon.wait_exit(15) == 0
        # The request completed: the gateway answered the route to the end.
        assert any(b"CALLGATE_RESULT" in c for c in commands), commands
    events = [e["event"] for e in daemon.log_events()]
    assert "stop_requested" in events and "daemon_stopped" in events


def test_systemd_notify_ready_then_stopping(tmp_path: Path, redis_proc: RedisServer) -> None:
    notify_path = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(notify_path)
    receiver.settimeout(20)
    text, http_port, agi_port = daemon_config(tmp_path, redis_url=redis_proc.url)
    env = {"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "400000"}
    try:
        with run_daemon(tmp_path, text, http_port, agi_port, env=env) as daemon:
            seen: list[str] = []
            while "READY=1" not in seen:
                seen.extend(receiver.recv(4096).decode().splitlines())
            daemon.wait_healthy()
            daemon.signal(signal.SIGTERM)
            while "STOPPING=1" not in seen:
                seen.extend(receiver.recv(4096).decode().splitlines())
            assert daemon.wait_exit(15) == 0
    finally:
        receiver.close()
    assert seen.index("READY=1") < seen.index("STOPPING=1")
    assert "WATCHDOG=1" in seen
    assert any(s.startswith("STATUS=") for s in seen)


def test_owned_redis_lives_and_dies_with_the_daemon(tmp_path: Path) -> None:
    text, http_port, agi_port = daemon_config(tmp_path)  # no [redis] url
    sock_path = tmp_path / "state" / "redis" / "redis.sock"
    with run_daemon(tmp_path, text, http_port, agi_port, name="first") as daemon:
        body = daemon.wait_ready()
        assert body["checks"]["redis"]["ok"] is True
        started = [e for e in daemon.log_events() if e["event"] == "owned_redis_started"]
        assert len(started) == 1
        pid = started[0]["pid"]
        assert _pid_alive(pid)
        client = redis.Redis(unix_socket_path=str(sock_path))
        client.set("callgate:test:survives", "yes")
        client.close()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(15) == 0
    deadline = time.monotonic() + 5
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(pid), "owned redis-server outlived the daemon"

    with run_daemon(tmp_path, text, http_port, agi_port, name="second") as daemon:
        daemon.wait_ready()
        client = redis.Redis(unix_socket_path=str(sock_path))
        assert client.get("callgate:test:survives") == b"yes"
        client.close()


def test_health_ready_and_metrics(tmp_path: Path, redis_proc: RedisServer) -> None:
    text, http_port, agi_port = daemon_config(tmp_path, redis_url=redis_proc.url)
    with run_daemon(tmp_path, text, http_port, agi_port) as daemon:
        body = daemon.wait_ready()
        assert body == {"ready": True, "checks": {"redis": {"ok": True, "detail": ""}},
                        "not_ready": {}}
        status, metrics = daemon.http_get("/metrics")
        assert status == 200 and b"callgate_redis_up 1.0" in metrics
        # Redis going away turns readiness red and says why, the process stays alive.
        redis_proc.stop()
        try:
            status, raw = daemon.http_get("/readyz", timeout=10)
            assert status == 503
            assert "redis" in json.loads(raw)["not_ready"]
            assert daemon.http_get("/healthz")[0] == 200
        finally:
            redis_proc.start()


def test_sighup_reload_applies_live_settings(tmp_path: Path, redis_proc: RedisServer) -> None:
    text, http_port, agi_port = daemon_config(tmp_path, redis_url=redis_proc.url)
    with run_daemon(tmp_path, text, http_port, agi_port) as daemon:
        daemon.wait_healthy()
        daemon.config_path.write_text(
            text.replace('log_level = "debug"', 'log_level = "info"')
            .replace('[site]\nname = "test"', '[site]\nname = "renamed"')
        )
        daemon.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        reloaded: list[dict[str, object]] = []
        while not reloaded and time.monotonic() < deadline:
            reloaded = [e for e in daemon.log_events() if e["event"] == "config_reloaded"]
            time.sleep(0.05)
        assert reloaded, daemon.logs()
        assert reloaded[0]["changed"] == {"daemon.log_level": ["debug", "info"]}
        assert reloaded[0]["needs_restart"] == ["site.name"]
        # A broken file is refused and the daemon keeps serving.
        daemon.config_path.write_text("[agi]\nlisten = 12\n")
        daemon.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(e["event"] == "config_reload_rejected" for e in daemon.log_events()):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("broken reload not reported")
        assert daemon.http_get("/healthz")[0] == 200


def test_unit_file(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    unit = (repo / "systemd" / "callgate.service").read_text()
    sections: dict[str, dict[str, str]] = {}
    current = ""
    for line in unit.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = {}
        else:
            key, _, value = line.partition("=")
            sections[current][key] = value
    svc = sections["Service"]
    assert svc["Type"] == "notify" and svc["Restart"] == "on-failure"
    assert svc["User"] == "callgate" and svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectSystem"] == "strict" and svc["PrivateTmp"] == "yes"
    assert "/var/lib/callgate" in svc["ReadWritePaths"] and int(svc["WatchdogSec"]) > 0
    analyze = "/usr/bin/systemd-analyze"
    if os.path.exists(analyze):
        # Point ExecStart at this checkout's entry point; the rest is verified as shipped.
        exe = Path(sys.executable).parent / "callgate"
        copy = tmp_path / "callgate.service"
        copy.write_text(unit.replace("/opt/callgate/.venv/bin/callgate", str(exe)))
        proc = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr

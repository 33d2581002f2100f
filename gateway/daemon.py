"""The daemon's life cycle: start every part, serve, stop cleanly.

Order matters both ways. Start: Redis first (nothing can be decided without it), then the
AMI sessions, then FastAGI and HTTP, and only then READY=1. Stop: refuse new AGI
connections first, let the calls being decided finish (bounded by shutdown_timeout), then
close AMI, HTTP, MQTT and Redis, so no decision is cut half-way and nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog
from aiohttp import web

from gateway.config import Config, ConfigError, load_config, parse_listen
from gateway.http_api import Check
from gateway.logs import set_level
from gateway.metrics import Metrics
from gateway.owned_redis import OwnedRedis
from gateway.redis_connect import RedisClient, connect_redis
from gateway.systemd_notify import SystemdNotifier
from gateway.wiring import Services, build_services

log = structlog.get_logger(__name__)

# Settings a SIGHUP can change without a restart; the rest are logged as needing one.
_LIVE_SETTINGS = {
    ("daemon", "log_level"),
    ("daemon", "shutdown_timeout"),
    ("limits", "redis_down_policy"),
    ("limits", "unknown_tenant"),
    ("agi", "request_timeout"),
}


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        config_path: Path | None = None,
        notifier: SystemdNotifier | None = None,
        on_ready: Callable[[Daemon], None] | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.notifier = notifier or SystemdNotifier()
        self.metrics = Metrics()
        self._on_ready = on_ready
        self._stop = asyncio.Event()
        self._owned_redis: OwnedRedis | None = None
        self.redis: RedisClient | None = None
        self.services: Services | None = None
        self._http_runner: web.AppRunner | None = None
        self.http_port: int | None = None
        self.agi_port: int | None = None

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        cfg = self.config
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)
        watchdog = asyncio.create_task(self.notifier.watchdog(), name="systemd-watchdog")
        try:
            self.notifier.notify("STATUS=starting")
            await self._start_redis()
            assert self.redis is not None
            self.services = build_services(cfg, self.redis, self.metrics)
            await self.services.start()
            self.agi_port = self.services.agi_port
            await self._start_http()
            log.info(
                "daemon_ready",
                agi_port=self.agi_port,
                http_port=self.http_port,
                asterisk=[a.name for a in cfg.asterisk],
                mqtt=cfg.mqtt is not None,
                redis="owned" if self._owned_redis else "external",
            )
            self.notifier.notify("READY=1", f"STATUS=serving FastAGI on port {self.agi_port}")
            if self._on_ready:
                self._on_ready(self)
            await self._stop.wait()
            self.notifier.notify("STOPPING=1", "STATUS=stopping")
            await self._shutdown()
            return 0
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            await self._close_all()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _start_redis(self) -> None:
        cfg = self.config
        url = cfg.redis.url
        if not url:
            self._owned_redis = OwnedRedis(Path(cfg.daemon.state_dir), cfg.redis.redis_server)
            await self._owned_redis.start()
            url = self._owned_redis.url
        # A blocking pool (and a gated cluster client): a burst of calls waits for a
        # connection instead of failing, which would read as Redis being down.
        self.redis = connect_redis(
            url, cluster=cfg.redis.cluster, socket_timeout=cfg.redis.socket_timeout,
            sentinel_master=cfg.redis.sentinel_master or None,
        )
        try:
            await self.redis.ping()
            self.metrics.redis_up.set(1)
        except (OSError, aioredis.ConnectionError, aioredis.TimeoutError) as exc:
            # Start anyway: the redis_down_policy decides calls until Redis answers.
            self.metrics.redis_up.set(0)
            log.error("redis_unreachable_at_start", url=_safe_url(url), error=str(exc))

    async def _start_http(self) -> None:
        from gateway.http_api import build_app

        app = build_app(self.metrics, self._readiness)
        assert self.services is not None
        self.services.mount_http(app)
        self._http_runner = web.AppRunner(app, access_log=None)
        await self._http_runner.setup()
        host, port = parse_listen(self.config.http.listen)
        site = web.TCPSite(self._http_runner, host, port)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else port

    async def _readiness(self) -> list[Check]:
        checks: list[Check] = []
        try:
            assert self.redis is not None
            await asyncio.wait_for(self.redis.ping(), self.config.redis.socket_timeout)
            self.metrics.redis_up.set(1)
            checks.append(Check("redis", True))
        except Exception as exc:
            self.metrics.redis_up.set(0)
            checks.append(Check("redis", False, f"unreachable: {exc}"))
        if self.services is not None:
            checks.extend(self.services.readiness())
        return checks

    async def _shutdown(self) -> None:
        assert self.services is not None
        timeout = self.config.daemon.shutdown_timeout
        in_flight = await self.services.drain(timeout)
        if in_flight:
            log.warning("shutdown_timeout_reached", still_in_flight=in_flight, timeout=timeout)
        else:
            log.info("shutdown_drained")

    async def _close_all(self) -> None:
        if self.services is not None:
            await self.services.close()
        if self._http_runner is not None:
            await self._http_runner.cleanup()
        if self.redis is not None:
            await self.redis.aclose()
        if self._owned_redis is not None:
            await self._owned_redis.stop()
        log.info("daemon_stopped")

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        log.info("stop_requested", signal=sig.name)
        self._stop.set()

    def _on_reload_signal(self) -> None:
        asyncio.get_running_loop().create_task(self.reload(), name="config-reload")

    async def reload(self) -> None:
        if self.config_path is None:
            log.info("config_reload_skipped", reason="running on the built-in default config")
            return
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("config_reload_rejected", error=str(exc), kept="previous config")
            return
        changed, needs_restart = diff_config(self.config, new)
        live = {k: v for k, v in changed.items() if tuple(k.split(".")[:2]) in _LIVE_SETTINGS}
        kept = {k: v for k, v in changed.items() if k not in live}
        applied = dataclasses.replace(
            self.config,
            daemon=new.daemon if any(k.startswith("daemon.") for k in live) else self.config.daemon,
            limits=new.limits if any(k.startswith("limits.") for k in live) else self.config.limits,
            agi=dataclasses.replace(self.config.agi, request_timeout=new.agi.request_timeout),
        )
        self.config = applied
        set_level(applied.daemon.log_level)
        if self.services is not None:
            self.services.apply_live_config(applied)
        log.info("config_reloaded", changed=live or {}, needs_restart=sorted(kept) + needs_restart)


def diff_config(old: Config, new: Config) -> tuple[dict[str, Any], list[str]]:
    """Changed `section.key` → (old, new) for plain sections; whole sections that differ."""
    changed: dict[str, Any] = {}
    whole: list[str] = []
    for f in dataclasses.fields(Config):
        if f.name == "source":
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if a == b:
            continue
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
            for sub in dataclasses.fields(a):
                va, vb = getattr(a, sub.name), getattr(b, sub.name)
                if va != vb:
                    changed[f"{f.name}.{sub.name}"] = (
                        ("***", "***") if "secret" in sub.name else (va, vb)
                    )
        else:
            whole.append(f.name)
    return changed, whole


def _safe_url(url: str) -> str:
    """Hide a password in a redis URL before it reaches a log."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url

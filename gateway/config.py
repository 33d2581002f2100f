"""Daemon configuration: a TOML file, validated at start, overridable from the environment.

An operator who misspells a key must learn it at start, from one line that names the key
and where it is, not from a call refused at 3 a.m.; hence the strict schema with line
numbers. Every setting can also come from `CALLGATE_<SECTION>_<KEY>` (for `[[asterisk]]`
entries `CALLGATE_ASTERISK_<N>_<KEY>`, N counted from 0) so a systemd environment file or
a container can change it without editing the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A configuration problem, phrased for the operator (file, line, key, reason)."""


@dataclass(frozen=True)
class SiteConfig:
    name: str = "default"
    # Emergency numbers always pass, whatever the limits (DESIGN invariant 3).
    emergency_numbers: tuple[str, ...] = ("112", "911", "999", "000", "110", "119")


@dataclass(frozen=True)
class RedisConfig:
    # Empty: the daemon starts and owns a local redis-server under daemon.state_dir.
    url: str = ""
    cluster: bool = False
    # With a redis+sentinel:// url whose path names no master.
    sentinel_master: str = ""
    socket_timeout: float = 2.0
    redis_server: str = "redis-server"


@dataclass(frozen=True)
class AgiConfig:
    listen: str = "127.0.0.1:4573"
    max_connections: int = 2000
    request_timeout: float = 10.0


@dataclass(frozen=True)
class HttpConfig:
    listen: str = "127.0.0.1:8080"


@dataclass(frozen=True)
class MqttConfig:
    url: str = "mqtt://127.0.0.1:1883"
    queue_size: int = 10000


@dataclass(frozen=True)
class AsteriskConfig:
    name: str
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = ""
    secret: str = ""
    action_timeout: float = 10.0
    ping_interval: float = 20.0


@dataclass(frozen=True)
class LimitsConfig:
    # What a call gets when Redis is unreachable: fail_closed (DENY) or fail_open.
    redis_down_policy: str = "fail_closed"
    lease_ttl: float = 60.0
    # A call naming a tenant never set up with `callgate limit set tenant`: allow (counted,
    # unlimited) or refuse with unknown_tenant.
    unknown_tenant: str = "allow"


@dataclass(frozen=True)
class PrepaidConfig:
    # Keyed hash of card PINs and voucher codes (16+ characters); the CLI that creates
    # cards and the daemon that checks PINs must share it. Empty: no PIN, no vouchers.
    pin_secret: str = ""
    pin_tries: int = 3  # PIN attempts per call in the prepaid IVR
    card_failures: int = 5  # wrong PINs on one card within an hour lock it ...
    caller_failures: int = 10  # ... or, from one caller id, lock that caller
    lock_seconds: int = 1800
    prompt_channel: str = "Local/warning@gw-prompt-player"  # warning prompt (ChanSpy)


@dataclass(frozen=True)
class DaemonConfig:
    state_dir: str = "./state"
    shutdown_timeout: float = 10.0
    log_level: str = "info"
    # auto: JSON lines when stdout is not a terminal, readable lines on a terminal.
    log_format: str = "auto"
    hw_profiles_dir: str = ""


@dataclass(frozen=True)
class Config:
    site: SiteConfig = field(default_factory=SiteConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    agi: AgiConfig = field(default_factory=AgiConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    prepaid: PrepaidConfig = field(default_factory=PrepaidConfig)
    mqtt: MqttConfig | None = None
    asterisk: tuple[AsteriskConfig, ...] = ()
    source: str = "<defaults>"


_SECTIONS: dict[str, type[Any]] = {
    "site": SiteConfig,
    "redis": RedisConfig,
    "agi": AgiConfig,
    "http": HttpConfig,
    "daemon": DaemonConfig,
    "limits": LimitsConfig,
    "prepaid": PrepaidConfig,
    "mqtt": MqttConfig,
    "asterisk": AsteriskConfig,
}
_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("limits", "redis_down_policy"): ("fail_closed", "fail_open"),
    ("limits", "unknown_tenant"): ("allow", "refuse"),
    ("daemon", "log_level"): ("debug", "info", "warning", "error"),
    ("daemon", "log_format"): ("auto", "json", "console"),
}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and apply environment overrides; raise ConfigError on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config is not UTF-8 text ({exc.reason})") from exc
    return parse_config(text, str(path), environ)


def parse_config(text: str, source: str, environ: Mapping[str, str] | None = None) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    locator = _KeyLocator(text, source)
    env = dict(os.environ if environ is None else environ)
    return _build(raw, locator, env, source)


def _build(raw: dict[str, Any], loc: _KeyLocator, env: dict[str, str], source: str) -> Config:
    kwargs: dict[str, Any] = {"source": source}
    for section, value in raw.items():
        if section not in _SECTIONS:
            raise ConfigError(loc.where(section, None) + _unknown("section", section, _SECTIONS))
        if section == "asterisk":
            if not isinstance(value, list):
                raise ConfigError(
                    loc.where(section, None) + "[asterisk] must be written [[asterisk]]"
                )
            continue
        if not isinstance(value, dict):
            raise ConfigError(loc.where(section, None) + f"'{section}' must be a [table]")
    for section, cls in _SECTIONS.items():
        if section == "asterisk":
            continue
        table = raw.get(section)
        if table is None and section == "mqtt" and not _env_has_section(env, "MQTT"):
            continue
        kwargs[section] = _section(
            cls, section, dict(table or {}), loc, env, f"CALLGATE_{section.upper()}_"
        )
    entries = raw.get("asterisk", [])
    servers = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(loc.where("asterisk", None) + "each [[asterisk]] must be a table")
        servers.append(
            _section(
                AsteriskConfig,
                "asterisk",
                dict(entry),
                loc,
                env,
                f"CALLGATE_ASTERISK_{index}_",
                occurrence=index,
            )
        )
    names = [s.name for s in servers]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{source}: two [[asterisk]] entries are named '{name}'")
    kwargs["asterisk"] = tuple(servers)
    cfg = Config(**kwargs)
    _check_semantics(cfg, loc)
    return cfg


def _env_has_section(env: Mapping[str, str], section: str) -> bool:
    return any(k.startswith(f"CALLGATE_{section}_") for k in env)


def _section(
    cls: type[Any],
    section: str,
    table: dict[str, Any],
    loc: _KeyLocator,
    env: Mapping[str, str],
    env_prefix: str,
    occurrence: int = 0,
) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            raise ConfigError(
                loc.where(section, key, occurrence) + _unknown(f"key in [{section}]", key, fields)
            )
        values[key] = _coerce(value, hints[key], loc.where(section, key, occurrence) + f"'{key}'")
    for key in fields:
        env_key = env_prefix + key.upper()
        if env_key in env:
            values[key] = _coerce_env(env[env_key], hints[key], f"environment {env_key}: ")
    missing = [
        f.name
        for f in fields.values()
        if f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(
            loc.where(section, None, occurrence) + f"[{section}] needs '{missing[0]}'"
        )
    for key, value in values.items():
        choices = _CHOICES.get((section, key))
        if choices and value not in choices:
            raise ConfigError(
                loc.where(section, key, occurrence)
                + f"'{key}' must be one of {', '.join(choices)}, not '{value}'"
            )
    return cls(**values)


def _coerce(value: Any, hint: Any, what: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{what} must be true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{what} must be a whole number")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{what} must be a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{what} must be a string")
    if origin is tuple:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{what} must be a list of strings")
    if origin in (typing.Union, types.UnionType):
        return value
    raise ConfigError(f"{what}: unsupported type")


def _coerce_env(value: str, hint: Any, what: str) -> Any:
    if hint is bool:
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{what}must be true or false, not '{value}'")
    if hint is int:
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{what}must be a whole number, not '{value}'") from None
    if hint is float:
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{what}must be a number, not '{value}'") from None
    if typing.get_origin(hint) is tuple:
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return value


def _unknown(what: str, key: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {what} '{key}'{hint}"


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"listen address '{value}' must be HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def _check_semantics(cfg: Config, loc: _KeyLocator) -> None:
    if not _NAME_RE.match(cfg.site.name):
        raise ConfigError(
            loc.where("site", "name") + "'name' must be 1-64 letters, digits, '_', '-' or '.'"
        )
    for section, value in (("agi", cfg.agi.listen), ("http", cfg.http.listen)):
        try:
            parse_listen(value)
        except ConfigError as exc:
            raise ConfigError(loc.where(section, "listen") + str(exc)) from None
    if cfg.redis.url:
        from gateway.redis_connect import connect_redis

        try:  # builds a client object only: nothing connects until the first command
            connect_redis(cfg.redis.url, cluster=cfg.redis.cluster,
                          socket_timeout=cfg.redis.socket_timeout,
                          sentinel_master=cfg.redis.sentinel_master or None)
        except ValueError as exc:
            raise ConfigError(loc.where("redis", "url") + str(exc)) from None
    if cfg.mqtt is not None and not cfg.mqtt.url.startswith(("mqtt://", "mqtts://")):
        raise ConfigError(loc.where("mqtt", "url") + "'url' must start with mqtt:// or mqtts://")
    for i, ast in enumerate(cfg.asterisk):
        if not _NAME_RE.match(ast.name):
            raise ConfigError(loc.where("asterisk", "name", i) + "'name' must be a short word")
        if not 0 < ast.port < 65536:
            raise ConfigError(loc.where("asterisk", "port", i) + "'port' must be 1-65535")
    positive = (
        ("agi", "max_connections", cfg.agi.max_connections),
        ("agi", "request_timeout", cfg.agi.request_timeout),
        ("daemon", "shutdown_timeout", cfg.daemon.shutdown_timeout),
        ("limits", "lease_ttl", cfg.limits.lease_ttl),
        ("prepaid", "pin_tries", cfg.prepaid.pin_tries),
        ("prepaid", "card_failures", cfg.prepaid.card_failures),
        ("prepaid", "caller_failures", cfg.prepaid.caller_failures),
        ("prepaid", "lock_seconds", cfg.prepaid.lock_seconds),
    )
    for section, key, number in positive:
        if number <= 0:
            raise ConfigError(loc.where(section, key) + f"'{key}' must be greater than 0")
    if cfg.prepaid.pin_secret and len(cfg.prepaid.pin_secret.encode()) < 16:
        raise ConfigError(loc.where("prepaid", "pin_secret")
                          + "'pin_secret' must be at least 16 characters")


class _KeyLocator:
    """Finds the line of a key in the TOML text, for error messages tomllib cannot give."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self._lines: dict[tuple[str, int, str | None], int] = {}
        section, seen = "", {}  # type: str, dict[str, int]
        occurrence = 0
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                section = header.group(2)
                occurrence = seen.get(section, -1) + 1
                seen[section] = occurrence
                self._lines.setdefault((section, occurrence, None), number)
                continue
            key = self._KEY.match(line)
            if key:
                self._lines.setdefault((section, occurrence, key.group(1)), number)

    def where(self, section: str, key: str | None, occurrence: int = 0) -> str:
        line = self._lines.get((section, occurrence, key)) or self._lines.get(
            (section, occurrence, None)
        )
        if line is None and key is not None:
            line = self._lines.get(("", 0, section))
        return f"{self.source}:{line}: " if line else f"{self.source}: "

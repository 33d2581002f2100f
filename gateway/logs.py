"""structlog set-up for the daemon.

JSON lines when stdout is not a terminal (journald, files, log shippers), readable lines on
a terminal. Every line carries `site`; `call_id`, `tenant`, `card` come from context bound
by the code handling a call (structlog contextvars), so an operator can grep one call.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
_METHOD_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "msg": logging.INFO,
                  "warning": logging.WARNING, "warn": logging.WARNING,
                  "error": logging.ERROR, "exception": logging.ERROR,
                  "critical": logging.CRITICAL, "fatal": logging.CRITICAL}


class LevelGate:
    """The level, shared by every logger and changed in place by set_level. Loggers are
    cached on first use (an uncached module logger re-binds on every call, some 30 us of
    a call's CPU on the AGI path), so the level cannot be baked into their class as
    structlog's filtering loggers do; a call below the level still costs only a compare."""

    def __init__(self, level: int) -> None:
        self.level = level


def gated_logger_class(gate: LevelGate) -> type[Any]:
    """structlog's fast bound logger, each level method first checking `gate`."""
    base: Any = structlog.make_filtering_bound_logger(logging.DEBUG)

    def gated(name: str, level: int) -> Any:
        method = getattr(base, name)
        plain = _PLAIN_METHODS.get(name)  # straight to the chain: one call less per line

        def meth(self: Any, event: str, *args: Any, **kw: Any) -> Any:
            if level < gate.level:
                return None
            if plain is not None and not args:
                return self._proxy_to_logger(plain, event, **kw)
            return method(self, event, *args, **kw)

        meth.__name__ = name
        return meth

    methods = {name: gated(name, level) for name, level in _METHOD_LEVELS.items()}
    return type("GatedBoundLogger", (base,), {**methods, "gate": gate})


# methods that structlog's own level methods turn into nothing but _proxy_to_logger(name)
_PLAIN_METHODS = {"debug": "debug", "info": "info", "msg": "info", "warning": "warning",
                  "warn": "warning", "error": "error", "critical": "critical",
                  "fatal": "critical"}


class IsoUtcStamper:
    """`timestamp` as structlog's TimeStamper(fmt="iso", utc=True) writes it
    (2026-11-23T17:54:45.365582Z), formatting the date and time once a second: every
    decision is a log line, and the datetime round trip was a fifth of its cost."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _: Any, __: str,
                 event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event["timestamp"] = f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"
        return event


def _fallback(obj: Any) -> Any:
    """What json cannot encode: its __structlog__() if it has one, else repr (as
    structlog's own JSON renderer does)."""
    method = getattr(obj, "__structlog__", None)
    return method() if callable(method) else repr(obj)


_ENCODER = json.JSONEncoder(default=_fallback)


class JsonLines:
    """The JSON output's whole processor chain in one step, with the same lines as
    merge_contextvars, add_log_level, IsoUtcStamper, the site, StackInfoRenderer,
    format_exc_info and JSONRenderer one after another: each decision is a line, and the
    seven calls made one cost about 18 us instead of 15."""

    def __init__(self, site: str) -> None:
        self._site = site
        self._stamp = IsoUtcStamper()
        self._stack = structlog.processors.StackInfoRenderer()

    def __call__(self, logger: Any, method_name: str,
                 event: MutableMapping[str, Any]) -> str:
        structlog.contextvars.merge_contextvars(logger, method_name, event)
        event["level"] = _LEVEL_NAMES.get(method_name, method_name)
        self._stamp(logger, method_name, event)
        event.setdefault("site", self._site)
        if "stack_info" in event or "exc_info" in event:
            event = structlog.processors.format_exc_info(
                logger, method_name, self._stack(logger, method_name, event))
        return _ENCODER.encode(event)


_LEVEL_NAMES = {"warn": "warning", "exception": "error"}  # as add_log_level names them


def configure_logging(site: str, level: str = "info", fmt: str = "auto",
                      stream: TextIO | None = None) -> None:
    """Process-wide by nature (structlog and stdlib logging are); called once by the CLI."""
    out = stream or sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())

    def add_site(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event.setdefault("site", site)
        return event

    wrapper_class = gated_logger_class(LevelGate(_LEVELS.get(level, logging.INFO)))
    if use_json:
        structlog.configure(
            processors=[JsonLines(site)],
            wrapper_class=wrapper_class,
            logger_factory=structlog.WriteLoggerFactory(out),
            cache_logger_on_first_use=True,
        )
    else:
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                IsoUtcStamper(),
                add_site,
                structlog.processors.StackInfoRenderer(),
                structlog.processors.format_exc_info,
                structlog.dev.ConsoleRenderer(colors=out.isatty()),
            ],
            wrapper_class=wrapper_class,
            logger_factory=structlog.PrintLoggerFactory(out),
            cache_logger_on_first_use=True,
        )
    # Libraries that log through stdlib (aiohttp, redis) go to stderr at warning and above.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def set_level(level: str) -> None:
    gate = getattr(structlog.get_config()["wrapper_class"], "gate", None)
    if isinstance(gate, LevelGate):
        gate.level = _LEVELS.get(level, logging.INFO)
        return
    structlog.configure(  # not set up by configure_logging: nothing is cached
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO))
    )

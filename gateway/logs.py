"""structlog set-up for the daemon.

JSON lines when stdout is not a terminal (journald, files, log shippers), readable lines on
a terminal. Every line carries `site`; `call_id`, `tenant`, `card` come from context bound
by the code handling a call (structlog contextvars), so an operator can grep one call.
"""

from __future__ import annotations

import logging
import sys
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
    """The first processor: drops what is below the level, which set_level changes in
    place. This way loggers are cached on first use (an uncached module logger re-binds
    on every call, some 30 us of a call's CPU on the AGI path) and still follow a
    SIGHUP that changes the level."""

    def __init__(self, level: int) -> None:
        self.level = level

    def __call__(self, _: Any, method: str,
                 event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if _METHOD_LEVELS.get(method, logging.INFO) < self.level:
            raise structlog.DropEvent
        return event


def configure_logging(site: str, level: str = "info", fmt: str = "auto",
                      stream: TextIO | None = None) -> None:
    """Process-wide by nature (structlog and stdlib logging are); called once by the CLI."""
    out = stream or sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())

    def add_site(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event.setdefault("site", site)
        return event

    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            LevelGate(_LEVELS.get(level, logging.INFO)),
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_site,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through stdlib (aiohttp, redis) go to stderr at warning and above.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def set_level(level: str) -> None:
    for processor in structlog.get_config()["processors"]:
        if isinstance(processor, LevelGate):
            processor.level = _LEVELS.get(level, logging.INFO)
            return
    structlog.configure(  # not set up by configure_logging: nothing is cached
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO))
    )

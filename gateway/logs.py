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
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_site,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through stdlib (aiohttp, redis) go to stderr at warning and above.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def set_level(level: str) -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO))
    )

"""The daemon's log set-up: loggers are cached for speed, and a SIGHUP level change still
reaches them."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
import structlog

from gateway.logs import configure_logging, set_level


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_a_level_change_reaches_loggers_already_in_use(restore_structlog: None) -> None:
    out = io.StringIO()
    configure_logging("paris-1", "info", "json", stream=out)
    log = structlog.get_logger("callgate.test")
    log.debug("hidden_at_info")
    log.info("limit_allowed", tenant="acme")
    set_level("debug")
    log.debug("shown_at_debug")
    set_level("warning")
    log.info("hidden_at_warning")
    log.error("limit_denied", reason="backend_unavailable")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["event"], line["level"]) for line in lines] == [
        ("limit_allowed", "info"), ("shown_at_debug", "debug"), ("limit_denied", "error")]
    assert all(line["site"] == "paris-1" for line in lines)


def test_lines_carry_an_iso_utc_timestamp_and_encode_anything(restore_structlog: None) -> None:
    out = io.StringIO()
    configure_logging("paris-1", "info", "json", stream=out)
    before = time.time()
    structlog.get_logger("callgate.test").info("limit_allowed", odd=object(), n=3)
    line = json.loads(out.getvalue())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", line["timestamp"])
    stamped = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
    assert before - 0.001 <= stamped <= time.time()
    assert line["odd"].startswith("<object object at") and line["n"] == 3


def _lines_of(emit: object, out: io.StringIO) -> list[dict[str, object]]:
    assert callable(emit)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(call_id="1700000000.7", tenant="acme")
    try:
        emit()
    finally:
        structlog.contextvars.clear_contextvars()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    for line in lines:  # the moment and the traceback's line numbers differ by nature
        line.pop("timestamp")
        if "exception" in line:
            line["exception"] = str(line["exception"]).splitlines()[-1]
        if "stack" in line:
            line["stack"] = str(line["stack"]).splitlines()[0]
    return lines


def _emit_every_kind() -> None:
    log = structlog.get_logger("callgate.test").bind(peer="10.0.0.9:5038", route="authorize")
    log.info("limit_allowed", lease="0876f746463a8891", call_id="kw-wins", n=3)
    log.warn("reconcile_fixed", freed=2)
    log.warning("release_deferred", odd=object.__new__(type("Odd", (), {
        "__structlog__": lambda self: "odd-as-structlog"})))
    log.debug("hidden")
    log.info("%s_pct", 40)
    log.info("traced", stack_info=True)
    try:
        raise ValueError("redis said no")
    except ValueError:
        log.exception("agi_handler_failed")
        log.error("with_exc_info", exc_info=True)


def test_json_lines_equal_the_processor_chain_they_replace(restore_structlog: None) -> None:
    """The one-step JSON chain writes what the seven structlog processors wrote."""
    out = io.StringIO()
    configure_logging("paris-1", "info", "json", stream=out)
    fused = _lines_of(_emit_every_kind, out)

    def add_site(_: object, __: str, event: dict[str, object]) -> dict[str, object]:
        event.setdefault("site", "paris-1")
        return event

    reference = io.StringIO()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_site,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(20),
        logger_factory=structlog.PrintLoggerFactory(reference),
        cache_logger_on_first_use=False,
    )
    expected = _lines_of(_emit_every_kind, reference)
    assert [list(line) for line in fused] == [list(line) for line in expected]  # key order
    assert fused == expected
    assert [line["event"] for line in fused] == [
        "limit_allowed", "reconcile_fixed", "release_deferred", "40_pct", "traced",
        "agi_handler_failed", "with_exc_info"]
    assert fused[0]["call_id"] == "kw-wins" and fused[0]["tenant"] == "acme"
    assert fused[2]["odd"] == "odd-as-structlog"
    assert fused[5]["exception"] == "ValueError: redis said no"

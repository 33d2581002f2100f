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

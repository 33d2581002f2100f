from __future__ import annotations

from pathlib import Path

import pytest

from hw_profiles import ProfileSet, load_profiles
from tests.hw_profiles.recording import Frame, read_events


@pytest.fixture(scope="session")
def profiles() -> ProfileSet:
    return load_profiles()


@pytest.fixture(scope="session")
def h1_events(asterisk_fixtures: Path) -> list[Frame]:
    return read_events(asterisk_fixtures / "h1-sip-register-contactstatus.ami.rx.txt")


@pytest.fixture(scope="session")
def h2_events(asterisk_fixtures: Path) -> list[Frame]:
    return read_events(asterisk_fixtures / "h2-sip-call-6001-to-6002.ami.rx.txt")

"""`callgate hw devices` against the simulated Asterisk over real AMI, with no daemon: the
CLI opens its own AMI session and lists every phone the PBX knows, with its contact,
User-Agent, matched profile, registration and calls in progress."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sim.simulator import AsteriskSim
from sim.world import WorldConfig
from tests.e2e_devices.conftest import POLY_VVX_450, YEALINK_T31P


@pytest.fixture
async def sim() -> AsyncIterator[AsteriskSim]:
    asterisk = AsteriskSim(speed=1.0, world_config=WorldConfig(auth_fail_delay=0.1, seed=3))
    await asterisk.start()
    try:
        yield asterisk
    finally:
        await asterisk.stop()


def _config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "callgate.toml"
    path.write_text(f'[site]\nname = "cli"\n\n[[asterisk]]\nname = "pbx1"\n'
                    f'host = "127.0.0.1"\nport = {port}\nusername = "gateway"\n'
                    'secret = "gateway"\naction_timeout = 3.0\n')
    return path


async def _hw_devices(config: Path, *extra: str) -> tuple[int, str, str]:
    """The real command in its own process (it sets up logging for itself)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "hw", "--config", str(config), "devices", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _rows(out: str) -> dict[str, list[str]]:
    lines = out.splitlines()
    assert lines[0].split() == ["ENDPOINT", "REGISTERED", "CONTACT", "USER-AGENT", "PROFILE",
                                "CALLS"]
    cols = [lines[0].index(h) for h in ("ENDPOINT", "REGISTERED", "CONTACT", "USER-AGENT",
                                         "PROFILE", "CALLS")]
    rows = {}
    for line in lines[1:-1]:
        cells = [line[a:b].strip() for a, b in zip(cols, [*cols[1:], None], strict=True)]
        rows[cells[0]] = cells
    return rows


async def test_lists_registered_phones_with_profiles_and_calls(
        sim: AsteriskSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim.phones.add_endpoint("6003", "secret6003")  # configured, never registered
    sim.register_phone("6001", user_agent=YEALINK_T31P)
    sim.register_phone("6002", user_agent=POLY_VVX_450)
    sim.phones.call("6001", "6002", talk=120.0)  # one call up between the two phones
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not sim.phones.endpoints["6002"].channels and loop.time() < deadline:
        await asyncio.sleep(0.02)

    code, out, err = await _hw_devices(_config(tmp_path, sim.ami_port))
    assert code == 0, err
    rows = _rows(out)
    assert rows["6001"] == ["6001", "yes", "sip:6001@127.0.0.1:5061", YEALINK_T31P,
                            "yealink-t31p", "1/2"]
    assert rows["6002"][1:] == ["yes", "sip:6002@127.0.0.1:5062", POLY_VVX_450,
                                "poly-vvx-450", "1/12"]
    assert rows["6003"][1:4] == ["no", "-", "-"]
    assert out.splitlines()[-1] == "3 devices, 2 registered"


async def test_an_unknown_phone_shows_the_default_profile_as_unmatched(
        sim: AsteriskSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim.register_phone("6001", user_agent="HomeBrew SIP 0.1")
    code, out, err = await _hw_devices(_config(tmp_path, sim.ami_port))
    assert code == 0, err
    assert _rows(out)["6001"][4] == "default (unmatched)"


async def test_no_reachable_asterisk_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = await _hw_devices(_config(tmp_path, port), "--timeout", "1")
    assert (code, out) == (1, "")
    assert "Asterisk pbx1:" in err and "no Asterisk answered" in err

"""Readers for the FastAGI recordings of a real Asterisk (shared/fixtures/asterisk)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# Same place tests/conftest.py's `asterisk_fixtures` points at; needed at collection time.
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "asterisk"
AGI_RX = sorted(FIXTURES.glob("*.agi.rx.txt"))
AGI_TIMELINES = sorted(FIXTURES.glob("*.agi.timeline.txt"))

_MARKER = re.compile(rb"--- (TX|RX|EV) t=\+([0-9.]+)s (\d+) bytes ---\n")


@dataclass(frozen=True)
class Chunk:
    direction: str  # RX: sent by Asterisk, TX: sent by the FastAGI server
    t: float
    data: bytes


def payload(path: Path) -> bytes:
    """The recorded bytes: everything after the `# ...` header line."""
    raw = path.read_bytes()
    return raw[raw.index(b"\n") + 1 :]


def env_block(path: Path) -> bytes:
    data = payload(path)
    return data[: data.index(b"\n\n") + 2]


def timeline(path: Path) -> list[Chunk]:
    data = payload(path)
    chunks: list[Chunk] = []
    pos = 0
    while pos < len(data):
        marker = _MARKER.match(data, pos)
        assert marker, f"{path.name}: no marker at byte {pos}"
        size = int(marker.group(3))
        body = data[marker.end() : marker.end() + size]
        assert len(body) == size
        if marker.group(1) != b"EV":
            chunks.append(Chunk(marker.group(1).decode(), float(marker.group(2)), body))
        pos = marker.end() + size
    return chunks


@dataclass(frozen=True)
class Exchange:
    command: bytes  # one TX chunk
    reply: bytes  # every RX byte up to the next TX


def exchanges(chunks: list[Chunk]) -> tuple[bytes, list[Exchange]]:
    """(the env block bytes, then each command with Asterisk's full answer to it)."""
    env = b""
    result: list[Exchange] = []
    for chunk in chunks:
        if chunk.direction == "TX":
            result.append(Exchange(chunk.data, b""))
        elif not result:
            env += chunk.data
        else:
            last = result[-1]
            result[-1] = Exchange(last.command, last.reply + chunk.data)
    return env, result


def env_mapping(block: bytes) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in block.decode().split("\n"):
        if line:
            key, _, value = line.partition(": ")
            env[key] = value
    return env


def agistatus(ami_rx: Path) -> str:
    """AGISTATUS as the AMI VarSet event of the same recording shows it."""
    found = re.search(rb"Variable: AGISTATUS\r\nValue: (\w+)\r\n", payload(ami_rx))
    assert found, f"no AGISTATUS in {ami_rx.name}"
    return found.group(1).decode()

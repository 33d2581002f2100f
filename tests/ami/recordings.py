"""Readers for the Asterisk recordings in shared/fixtures/asterisk (format in its README)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ami.frames import FrameParser, Message

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "asterisk"
_MARKER = re.compile(rb"--- (TX|RX|EV) t=\+([0-9.]+)s ([0-9]+) bytes ---")


@dataclass(frozen=True)
class Chunk:
    direction: str  # TX (client to Asterisk), RX (Asterisk to client) or EV (recorder note)
    t: float
    data: bytes


def rx_files() -> list[Path]:
    return sorted(FIXTURES.glob("*.ami.rx.txt"))


def rx_bytes(path: Path) -> bytes:
    """The recorded bytes, without the one `# ...` header line."""
    data = path.read_bytes()
    return data[data.index(b"\n") + 1 :]


def timeline_of(rx_path: Path) -> Path:
    return rx_path.with_name(rx_path.name.replace(".ami.rx.txt", ".ami.timeline.txt"))


def recording(prefix: str, kind: str = "rx") -> Path:
    (path,) = FIXTURES.glob(f"{prefix}-*.ami.{kind}.txt")
    return path


def timeline(path: Path) -> list[Chunk]:
    data = path.read_bytes()
    pos = data.index(b"\n") + 1
    chunks: list[Chunk] = []
    while pos < len(data):
        nl = data.index(b"\n", pos)
        m = _MARKER.fullmatch(data[pos:nl])
        if m is None:
            raise ValueError(f"{path.name}: bad marker at byte {pos}: {data[pos:nl][:80]!r}")
        size = int(m[3])
        body = data[nl + 1 : nl + 1 + size]
        if len(body) != size:
            raise ValueError(f"{path.name}: chunk at byte {pos} is truncated")
        chunks.append(Chunk(m[1].decode(), float(m[2]), body))
        pos = nl + 1 + size
    return chunks


def parse_all(data: bytes) -> list[Message]:
    return FrameParser().feed(data)

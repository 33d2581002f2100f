"""Minimal reader for the `*.ami.rx.txt` recordings: enough to replay events, no more.

Frames end with CRLF CRLF, lines are `Key: value` (empty values keep a trailing space);
the file starts with one `# ...` header line (LF) and then the bare AMI banner line.
"""

from __future__ import annotations

from pathlib import Path


class Frame:
    """A recorded AMI message with case-insensitive `get`, like ami.frames.Message."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs
        self._first: dict[str, str] = {}
        for key, value in pairs:
            self._first.setdefault(key.lower(), value)

    def get(self, key: str, default: str | None = None, /) -> str | None:
        return self._first.get(key.lower(), default)

    @property
    def name(self) -> str:
        return self.get("Event") or ""

    def __repr__(self) -> str:
        return f"Frame({self.pairs!r})"


def read_frames(path: Path) -> list[Frame]:
    data = path.read_bytes()
    _header, _, data = data.partition(b"\n")
    _banner, _, data = data.partition(b"\r\n")
    frames = []
    for chunk in data.decode("utf-8").split("\r\n\r\n"):
        if not chunk.strip():
            continue
        pairs = []
        for line in chunk.split("\r\n"):
            key, sep, value = line.partition(": ")
            if not sep and line.endswith(":"):
                key, value = line[:-1], ""
            pairs.append((key, value))
        frames.append(Frame(pairs))
    return frames


def read_events(path: Path) -> list[Frame]:
    return [f for f in read_frames(path) if f.get("Event")]


def event(name: str, **fields: str) -> Frame:
    """A hand-made event, for cases the recordings do not contain."""
    return Frame([("Event", name), *fields.items()])

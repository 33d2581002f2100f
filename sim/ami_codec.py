"""AMI wire format: ordered `Key: Value` headers, CRLF lines, a blank line ends a message.

Written independently of ami/ (the production client) so the two check each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

Headers = tuple[tuple[str, str], ...]
BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def encode(headers: Iterable[tuple[str, str]]) -> bytes:
    """One message; an empty value is sent as `Key: ` with the trailing space, as Asterisk does."""
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode("utf-8") + b"\r\n"


@dataclass(frozen=True)
class Message:
    """A received message; keys compare case-insensitively, repeats are kept in order."""

    headers: Headers

    def get(self, key: str, default: str | None = None) -> str | None:
        low = key.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return default

    def get_all(self, key: str) -> list[str]:
        low = key.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)


def parse_lines(lines: Iterable[str]) -> Message:
    out: list[tuple[str, str]] = []
    for line in lines:
        key, sep, value = line.partition(":")
        if not sep:
            # Asterisk keeps going on a header without a colon; so do we, with an empty value.
            out.append((line.strip(), ""))
            continue
        out.append((key.strip(), value[1:] if value.startswith(" ") else value))
    return Message(tuple(out))


class MessageReader:
    """Incremental parser: feed bytes as they arrive, collect complete messages.

    Accepts LF or CRLF line ends (telnet users and some libraries send bare LF).
    """

    def __init__(self, max_message: int = 1 << 20) -> None:
        self._buf = bytearray()
        self._lines: list[str] = []
        self._size = 0
        self._max = max_message

    def feed(self, data: bytes) -> list[Message]:
        self._buf += data
        done: list[Message] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self._max:
                    raise ValueError("AMI line too long")
                return done
            raw = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if line == "":
                if self._lines:
                    done.append(parse_lines(self._lines))
                    self._lines = []
                    self._size = 0
                continue
            self._size += len(line)
            if self._size > self._max:
                raise ValueError("AMI message too large")
            self._lines.append(line)

"""AMI wire format: messages, an incremental frame parser and the action encoder.

The parser splits on bytes and decodes whole lines only, so a UTF-8 character cut by a
TCP read boundary is never damaged. It never raises on input: bad lines, oversized lines
and undecodable bytes are logged and the stream re-synchronises on the next blank line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger(__name__)

MAX_LINE_BYTES = 64 * 1024
MAX_FRAME_BYTES = 1024 * 1024
_END_COMMAND = "--END COMMAND--"
_FOLLOWS_HEADERS = frozenset({"privilege", "actionid"})


@dataclass(frozen=True)
class Message:
    """One AMI frame: its header pairs in wire order, repeated keys kept."""

    headers: tuple[tuple[str, str], ...]
    _index: dict[str, tuple[str, ...]] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        index: dict[str, list[str]] = {}
        for key, value in self.headers:
            index.setdefault(key.lower(), []).append(value)
        object.__setattr__(self, "_index", {k: tuple(v) for k, v in index.items()})

    @classmethod
    def of(cls, *pairs: tuple[str, str], **kw: str) -> Message:
        """Build a message by hand (tests, the simulator): pairs first, then keywords."""
        return cls(tuple(pairs) + tuple(kw.items()))

    def get(self, key: str, default: str | None = None) -> str | None:
        values = self._index.get(key.lower())
        return values[0] if values else default

    def get_all(self, key: str) -> list[str]:
        return list(self._index.get(key.lower(), ()))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)

    @property
    def is_event(self) -> bool:
        return "event" in self._index

    @property
    def is_response(self) -> bool:
        # OriginateResponse events carry a Response header too: Event wins.
        return "response" in self._index and "event" not in self._index

    @property
    def name(self) -> str:
        """The Event name for events, the Response value (Success, Error...) otherwise."""
        return self.get("Event") or self.get("Response") or ""

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def to_dict(self) -> dict[str, str]:
        """First value per key, for logging and quick looks."""
        return dict(reversed(self.headers))


class FrameParser:
    """Incremental AMI parser: feed it recv() chunks, get complete messages back.

    Handles the bare banner line, CRLF or LF endings, `Key: ` empty values, Asterisk's
    legacy `Response: Follows` command output (turned into `Output` headers, as
    Asterisk 14+ sends them), oversized lines (the frame is dropped, the next one kept)
    and invalid UTF-8 (replaced by U+FFFD, logged).
    """

    def __init__(
        self,
        *,
        max_line: int = MAX_LINE_BYTES,
        max_frame: int = MAX_FRAME_BYTES,
        logger: Any = None,
    ) -> None:
        self._max_line = max_line
        self._max_frame = max_frame
        self._log = logger if logger is not None else log
        self._buf = bytearray()
        self._scan_from = 0
        self._headers: list[tuple[str, str]] = []
        self._frame_bytes = 0
        self._skipping_line = False  # inside an oversized line, waiting for its newline
        self._dropping = False  # frame is discarded up to the next blank line
        self._follows = False  # inside legacy Command output
        self._follows_ended = False
        self._follows_output = False
        self._first_line = True
        self._bad_utf8_logged = False
        self.banner: str | None = None
        self.dropped_frames = 0

    def feed(self, data: bytes) -> list[Message]:
        out: list[Message] = []
        buf = self._buf
        buf += data
        last = buf.rfind(b"\n", self._scan_from)
        if last < 0:
            lines = []
        else:
            lines = buf[:last].split(b"\n")
            del buf[: last + 1]
            if self._skipping_line:  # the tail of an oversized line
                self._skipping_line = False
                lines = lines[1:]
        self._scan_from = len(buf)
        max_line = self._max_line
        headers = self._headers
        for raw in lines:
            size = len(raw)
            if size > max_line:
                self._oversized(size)
                headers = self._headers
                continue
            if self._first_line or self._dropping or self._follows:
                self._line(bytes(raw), out)
                headers = self._headers
                continue
            # Fast path: a header line or the blank line ending a frame.
            if raw[-1:] == b"\r":
                raw = raw[:-1]
            if not raw:
                if headers:
                    out.append(Message(tuple(headers)))
                    self._reset_frame()
                    headers = self._headers
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = self._decode(bytes(raw))
            key, sep, rest = line.partition(":")
            if sep and key and not headers and key.lower() == "response":
                self._header_line(line)  # may open legacy `Response: Follows` output
            elif sep and key and key[0] != " " and key[-1] != " ":
                headers.append((key, rest[1:] if rest[:1] == " " else rest))
            else:
                self._header_line(line)
            self._frame_bytes += size + 1
            if self._frame_bytes > self._max_frame:
                self._frame_too_big()
                headers = self._headers
        if len(buf) > max_line:
            # An endless line: drop what we hold and skip to its newline.
            self._oversized(len(buf))
            buf.clear()
            self._scan_from = 0
            self._skipping_line = True
        return out

    def _frame_too_big(self) -> None:
        self._log.warning(
            "ami_frame_oversized", frame_bytes=self._frame_bytes, limit=self._max_frame
        )
        self._start_drop()

    def _oversized(self, size: int) -> None:
        if not self._dropping:
            self._log.warning("ami_frame_oversized", line_bytes=size, limit=self._max_line)
            self._start_drop()

    def _start_drop(self) -> None:
        self._dropping = True
        self.dropped_frames += 1
        self._reset_frame()

    def _reset_frame(self) -> None:
        self._headers = []
        self._frame_bytes = 0
        self._follows = False
        self._follows_ended = False
        self._follows_output = False
        self._bad_utf8_logged = False

    def _decode(self, raw: bytes) -> str:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            if not self._bad_utf8_logged:
                self._bad_utf8_logged = True
                self._log.warning("ami_frame_bad_utf8", sample=raw[:80].hex())
            return raw.decode("utf-8", errors="replace")

    def _line(self, raw: bytes, out: list[Message]) -> None:
        line = self._decode(raw)
        if self._dropping:
            if not line:
                self._dropping = False
                self._reset_frame()
            return
        if self._first_line:
            self._first_line = False
            if line and ":" not in line:
                self.banner = line
                return
        if self._follows and not self._follows_ended:
            self._follows_line(line)
        elif not line:
            if self._headers:
                out.append(Message(tuple(self._headers)))
            self._reset_frame()
            return
        else:
            self._header_line(line)
        self._frame_bytes += len(raw) + 1
        if self._frame_bytes > self._max_frame:
            self._frame_too_big()

    def _header_line(self, line: str) -> None:
        key, sep, rest = line.partition(":")
        if not sep or not key.strip():
            self._log.warning("ami_line_without_colon", line=line[:200])
            return
        value = rest[1:] if rest.startswith(" ") else rest
        key = key.strip()
        self._headers.append((key, value))
        if value == "Follows" and len(self._headers) == 1 and key.lower() == "response":
            self._follows = True

    def _follows_line(self, line: str) -> None:
        if line.endswith(_END_COMMAND):
            self._follows_ended = True
            line = line[: -len(_END_COMMAND)]
            if line:
                self._headers.append(("Output", line))
            return
        if not self._follows_output:
            key, sep, rest = line.partition(":")
            if sep and key.lower() in _FOLLOWS_HEADERS:
                self._headers.append((key, rest[1:] if rest.startswith(" ") else rest))
                return
        self._follows_output = True
        self._headers.append(("Output", line))


def _pairs(fields: Iterable[tuple[str, str]] | Mapping[str, str]) -> Iterable[tuple[str, str]]:
    if isinstance(fields, Mapping):
        return fields.items()
    return fields


def _check(what: str, text: str) -> None:
    if "\r" in text or "\n" in text:
        raise ValueError(f"AMI {what} must not contain CR or LF: {text!r}")


def encode_action(
    name: str,
    fields: Iterable[tuple[str, str]] | Mapping[str, str],
    action_id: str,
) -> bytes:
    """Serialise an action; CR/LF anywhere would let a value inject headers, so it is refused."""
    _check("action name", name)
    _check("ActionID", action_id)
    if not name.strip():
        raise ValueError("AMI action name must not be empty")
    parts = [f"Action: {name}\r\n", f"ActionID: {action_id}\r\n"]
    for key, value in _pairs(fields):
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"AMI field {key!r} must be str: str, got {type(value).__name__}")
        _check(f"field name {key!r}", key)
        _check(f"value of {key!r}", value)
        if not key.strip() or ":" in key:
            raise ValueError(f"AMI field name {key!r} is empty or contains ':'")
        if key.lower() in ("action", "actionid"):
            raise ValueError(f"AMI field {key!r} is set by the client, do not pass it")
        parts.append(f"{key}: {value}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")

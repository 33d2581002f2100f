"""FastAGI wire format: the env block, reply lines and command argument quoting.

Sans-IO, so it can be fuzzed and shared by anything that reads an AGI socket. The facts
come from the Asterisk 22 recordings (shared/fixtures/asterisk) and res/res_agi.c:
`launch_netscript` + `setup_env` write the env block, `parse_args` splits command lines,
`agi_handle_command` frames replies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gateway.agi.errors import AgiProtocolError, BadRequest

MAX_ENV_BYTES = 16 * 1024
# res_agi.c reads commands with fgets into an 8192-byte buffer: a longer line is cut
# and the tail runs as a second command. 8190 bytes + LF is the longest safe line.
MAX_COMMAND_BYTES = 8190

_LINE_RE = re.compile(rb"(agi_[A-Za-z0-9_]+): ?(.*)\Z", re.S)
# The same line syntax over many lines at once: each match starts a line and ends at its LF.
_LINES_RE = re.compile(r"^(agi_[A-Za-z0-9_]+): ?(.*)\n", re.M)
_ARG_LINE_RE = re.compile(r"^agi_arg_([1-9][0-9]{0,3}):", re.M)  # as _ARG_KEY_RE, per line
_ARG_KEY_RE = re.compile(r"agi_arg_([1-9][0-9]{0,3})\Z")
_PARAM_KEY_RE = re.compile(r"[A-Za-z0-9_.\-]+\Z")
# Free text from the far end (a SIP display name) may be Latin-1; refusing the call for
# it would be wrong, so only this key is decoded leniently.
_LENIENT_KEYS = frozenset({"agi_calleridname"})


@dataclass(frozen=True)
class AgiRequest:
    """One FastAGI request: what the dialplan asked for, on which channel."""

    env: Mapping[str, str]
    route: str
    args: Mapping[str, str]
    call_id: str
    channel: str
    caller: str
    extension: str

    @property
    def script(self) -> str:
        """agi_network_script as sent, query string included."""
        return self.env["agi_network_script"]


def _preview(raw: bytes, limit: int = 40) -> str:
    return repr(raw[:limit]) + ("..." if len(raw) > limit else "")


class EnvBlockParser:
    """Incremental parser for the env block, which may arrive split over many reads.

    Syntax errors (a line that is not `agi_key: value`, an over-long block) raise at once
    with `framed=False`: the peer is not an Asterisk, or we cannot find the end of its block.
    Content errors (non-UTF-8, duplicate keys, bad args) are kept until the empty line so
    the caller knows Asterisk is now waiting for commands and can answer with a DENY.
    """

    def __init__(self, *, max_bytes: int = MAX_ENV_BYTES) -> None:
        self._max_bytes = max_bytes
        self._buffer = bytearray()
        self._total = 0
        self._lines = 0
        self._env: dict[str, str] = {}
        self._content_error: str | None = None
        # agi_arg_N keys as the fast path saw them; None once a line went the slow way
        self._numbered: list[tuple[int, str]] | None = []
        self._done = False
        self.remainder = b""

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, data: bytes) -> AgiRequest | None:
        """Consume bytes; return the request once the empty line has been seen."""
        if self._done:
            raise BadRequest("env block already complete", framed=True)
        buffer = self._buffer
        seen = len(buffer)
        buffer += data
        if (
            self._lines  # the first line showed an Asterisk: the rest can wait for the end
            and buffer.find(b"\n\n", seen - 1 if seen else 0) < 0
            and buffer[:1] != b"\n"
            and b"\r" not in buffer  # CRLF lines (not Asterisk's) go the general way
            and self._total + len(buffer) <= self._max_bytes
        ):
            # Asterisk writes the block a line at a time (res_agi.c setup_env), so under
            # load it comes in a dozen reads or more: parse it once, when it is complete.
            return None
        taken = self._take_lines()
        if taken is not None:
            return taken if isinstance(taken, AgiRequest) else None
        return self._feed_lines()

    def _take_lines(self) -> AgiRequest | bool | None:
        """All complete lines in the buffer with one regex: the common case, 5x cheaper.

        None when anything is unusual (CR, non-UTF-8, a duplicate or bad line, the size
        cap): then nothing was consumed and the line-by-line parser decides, error and all.
        """
        buffer = self._buffer
        if buffer[:1] == b"\n":
            if not self._lines:
                return None  # an empty line before any variable: an error
            cut, done = 0, True
        else:
            end = buffer.find(b"\n\n")
            done = end >= 0
            cut = end + 1 if done else buffer.rfind(b"\n") + 1  # up to the last whole line
            if cut == 0:
                return None
        size = self._total + cut + (1 if done else 0)
        if size > self._max_bytes:
            return None
        try:
            text = buffer[:cut].decode("utf-8")
        except UnicodeDecodeError:
            return None
        if "\r" in text:
            return None
        pairs = _LINES_RE.findall(text)
        if len(pairs) != text.count("\n"):
            return None
        env = self._env
        if env:
            new = dict(pairs)
            if len(new) != len(pairs) or not env.keys().isdisjoint(new):
                return None
            env.update(new)
        else:
            env.update(pairs)
            if len(env) != len(pairs):
                env.clear()
                return None
        numbered = self._numbered
        if numbered is not None:
            first = text.find("agi_arg_")  # Asterisk writes them last: search from there
            if first >= 0:
                numbered.extend(
                    (int(n), f"agi_arg_{n}") for n in _ARG_LINE_RE.findall(text, first)
                )
        self._lines += len(pairs)
        self._total += cut
        if not done:
            del buffer[:cut]
            if self._total + len(buffer) > self._max_bytes:
                raise BadRequest(f"env block longer than {self._max_bytes} bytes", framed=False)
            return False
        self._lines += 1
        self._total += 1
        self._done = True
        self.remainder = bytes(buffer[cut + 1 :])
        buffer.clear()
        return self._finish()

    def _feed_lines(self) -> AgiRequest | None:
        buffer = self._buffer
        pos = 0  # scan by index and trim once: deleting per line was the hot spot
        try:
            while True:
                end = buffer.find(b"\n", pos)
                if end < 0:
                    if self._total + len(buffer) - pos > self._max_bytes:
                        raise BadRequest(
                            f"env block longer than {self._max_bytes} bytes", framed=False
                        )
                    return None
                self._total += end + 1 - pos
                if self._total > self._max_bytes:
                    raise BadRequest(
                        f"env block longer than {self._max_bytes} bytes", framed=False
                    )
                line = bytes(buffer[pos:end])
                pos = end + 1
                if self._line(line):
                    self._done = True
                    self.remainder = bytes(buffer[pos:])
                    pos = len(buffer)
                    return self._finish()
        finally:
            del buffer[:pos]

    def _finish(self) -> AgiRequest:
        call_id = self._env.get("agi_uniqueid")
        if self._content_error is not None:
            raise BadRequest(self._content_error, framed=True, call_id=call_id)
        numbered = self._numbered
        if numbered is None:
            numbered = _numbered_args(self._env)
        try:
            return _build_request(self._env, numbered)
        except BadRequest as exc:
            exc.call_id = call_id
            raise

    def _line(self, raw: bytes) -> bool:
        """Handle one line without its LF; True at the terminating empty line."""
        self._lines += 1
        self._numbered = None
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw:
            if self._lines == 1:
                raise BadRequest("empty line before any agi_ variable", framed=False)
            return True
        match = _LINE_RE.match(raw)
        if match is None:
            raise BadRequest(
                f"env line {self._lines} is not 'agi_key: value': {_preview(raw)}", framed=False
            )
        key = match.group(1).decode("ascii")
        value_raw = match.group(2)
        try:
            value = value_raw.decode("utf-8")
        except UnicodeDecodeError:
            value = value_raw.decode("utf-8", "replace")
            if key not in _LENIENT_KEYS:
                self._note(f"{key} is not valid UTF-8: {_preview(value_raw)}")
        if key in self._env:
            self._note(f"{key} appears twice in the env block")
        else:
            self._env[key] = value
        return False

    def _note(self, reason: str) -> None:
        if self._content_error is None:
            self._content_error = reason


def parse_env_block(data: bytes, *, max_bytes: int = MAX_ENV_BYTES) -> AgiRequest:
    """Parse a complete env block (bytes up to and including its empty line)."""
    parser = EnvBlockParser(max_bytes=max_bytes)
    request = parser.feed(data)
    if request is None:
        raise BadRequest(
            f"env block ends without an empty line after {len(data)} bytes", framed=False
        )
    if parser.remainder:
        raise BadRequest(
            f"{len(parser.remainder)} unexpected bytes after the env block", framed=True
        )
    return request


def _split_params(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """key=value items from the query string and agi_arg_N, in that order."""
    params: dict[str, str] = {}
    origin: dict[str, str] = {}
    for source, item in items:
        if not item.strip():
            continue  # AGI(url,,x=1) or a trailing '&': nothing was meant
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise BadRequest(f"{source} {item!r} is not key=value")
        if not _PARAM_KEY_RE.match(key):
            raise BadRequest(f"{source} {item!r} has a bad key {key!r}")
        if key in params and params[key] != value:
            raise BadRequest(
                f"{key!r} given twice with different values: {params[key]!r} in "
                f"{origin[key]}, {value!r} in {source}"
            )
        params[key] = value
        origin[key] = source
    return params


def _numbered_args(env: Mapping[str, str]) -> list[tuple[int, str]]:
    """(N, key) for every agi_arg_N key."""
    return [
        (int(match.group(1)), key)
        for key in env
        if key.startswith("agi_arg_") and (match := _ARG_KEY_RE.match(key)) is not None
    ]


def request_from_env(env: Mapping[str, str]) -> AgiRequest:
    """Build the request from a decoded env mapping; BadRequest says what is wrong."""
    return _build_request(dict(env), _numbered_args(env))


def _build_request(env: dict[str, str], numbered: list[tuple[int, str]]) -> AgiRequest:
    """`env` becomes the request's (read-only) env: the caller gives it up."""
    script = env.get("agi_network_script")
    if script is None:
        raise BadRequest("agi_network_script missing: the AGI URL has no route")
    call_id = env.get("agi_uniqueid", "")
    if not call_id:
        raise BadRequest("agi_uniqueid missing or empty")
    path, _, query = script.partition("?")
    route = path.strip("/")
    if not route:
        raise BadRequest(f"empty route in agi_network_script {script!r}")
    items = [("query string item", item) for item in query.split("&")] if query else []
    items.extend((key, env[key]) for _, key in sorted(numbered))
    return AgiRequest(
        env=MappingProxyType(env),
        route=route,
        args=MappingProxyType(_split_params(items)),
        call_id=call_id,
        channel=env.get("agi_channel", ""),
        caller=env.get("agi_callerid", ""),
        extension=env.get("agi_extension", ""),
    )


# ---- replies ------------------------------------------------------------------------------

_STATUS_RE = re.compile(r"([0-9]{3})([ -])(.*)\Z", re.S)
_RESULT_RE = re.compile(r"result=(\S*)(.*)\Z", re.S)
# The usual reply, `200 result=1` or `200 result=1 (value)`, without the general parse.
_PLAIN_200_RE = re.compile(r"200 result=(\S*)(?: \(([^()\r\n]*)\))?\n?\Z")
_NO_EXTRAS: Mapping[str, str] = MappingProxyType({})
_MULTI_START_RE = re.compile(rb"[0-9]{3}-")
_FINAL_RE = re.compile(rb"[0-9]{3} ")


@dataclass(frozen=True)
class AgiReply:
    """A reply to one command. `value` is the text in parentheses, `extras` e.g. endpos."""

    code: int
    result: str | None
    value: str | None
    extras: Mapping[str, str]
    text: str

    @property
    def result_int(self) -> int:
        try:
            return int(self.result or "")
        except ValueError:
            raise AgiProtocolError(f"result is not a number in {self.text!r}") from None


def is_hangup_notice(line: bytes) -> bool:
    """Asterisk's `HANGUP` line, written in front of the next reply after a hangup."""
    return line.rstrip(b"\r\n") == b"HANGUP"


def starts_multiline(line: bytes) -> bool:
    """`520-...`: more lines follow until one that starts `NNN `."""
    return _MULTI_START_RE.match(line) is not None


def ends_multiline(line: bytes) -> bool:
    return _FINAL_RE.match(line) is not None


def parse_reply(data: bytes) -> AgiReply:
    """Parse the bytes of one reply (one line, or a `NNN-` ... `NNN ` block)."""
    common = _COMMON_REPLIES.get(data) if type(data) is bytes else None
    if common is not None:
        return common
    return _parse_reply(data)


def _parse_reply(data: bytes) -> AgiReply:
    text = data.decode("utf-8", "replace")
    plain = _PLAIN_200_RE.match(text)
    if plain is not None:
        return AgiReply(200, plain.group(1), plain.group(2), _NO_EXTRAS, text.rstrip("\n"))
    return _parse_reply_text(text)


def _parse_reply_text(text: str) -> AgiReply:
    """The general parse, for every shape of reply."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    if not lines:
        raise AgiProtocolError("empty reply")
    status = _STATUS_RE.match(lines[0])
    if status is None:
        raise AgiProtocolError(f"not an AGI reply: {lines[0][:80]!r}")
    code = int(status.group(1))
    if status.group(2) == "-":
        if len(lines) < 2 or _FINAL_RE.match(lines[-1].encode("utf-8", "replace")) is None:
            raise AgiProtocolError(f"multi-line {code} reply without its final 'NNN ' line")
    elif len(lines) > 1:
        raise AgiProtocolError(f"unexpected text after a one-line reply: {lines[1][:80]!r}")
    full_text = "\n".join(lines)
    if code != 200:
        return AgiReply(code, None, None, MappingProxyType({}), full_text)
    if status.group(2) == "-":
        raise AgiProtocolError("a 200 reply is never multi-line")
    found = _RESULT_RE.match(status.group(3))
    if found is None:
        raise AgiProtocolError(f"200 reply without result=: {lines[0][:80]!r}")
    result, rest = found.group(1), found.group(2)
    value: str | None = None
    if rest.startswith(" ("):
        close = rest.rfind(")")
        if close < 0:
            raise AgiProtocolError(f"unterminated '(' in {lines[0][:80]!r}")
        value, rest = rest[2:close], rest[close + 1 :]
    extras: dict[str, str] = {}
    for token in rest.split():
        key, sep, val = token.partition("=")
        if not sep or not key:
            raise AgiProtocolError(f"unexpected {token[:40]!r} in {lines[0][:80]!r}")
        extras[key] = val
    return AgiReply(code, result, value, MappingProxyType(extras), full_text)


# Replies that carry no value, parsed once: AgiReply is immutable, so they can be shared.
_COMMON_REPLIES: Mapping[bytes, AgiReply] = MappingProxyType(
    {
        raw: _parse_reply(raw)
        for n in range(-2, 2)
        for raw in (f"200 result={n}\n".encode(), f"200 result={n}".encode())
    }
)


# ---- command arguments ---------------------------------------------------------------------

# CR/LF would end the command line early and inject a second command; NUL would end the
# C string. Both are dropped rather than refused, so a value from a caller cannot break out.
_DROP = str.maketrans("", "", "\r\n\x00")
_NEEDS_CARE_RE = re.compile(r'[\r\n\x00\\"]')
_TOKEN_RE = re.compile(r'[^\s"\\\x00-\x1f\x7f]+\Z')


def quote_arg(value: str) -> str:
    """Quote a value so Asterisk's parse_args gives it back unchanged (minus CR/LF/NUL).

    parse_args: `"` toggles quoting, `\\` makes the next character literal, space and tab
    split words outside quotes. So: escape backslashes and quotes, then wrap in quotes.
    """
    if _NEEDS_CARE_RE.search(value) is None:  # the usual value: nothing to drop or escape
        return f'"{value}"'
    cleaned = value.translate(_DROP)
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bare_token(value: str, what: str) -> str:
    """A name that must reach Asterisk as one word (variable, file, application)."""
    if not _TOKEN_RE.match(value):
        raise ValueError(f"{what} {value!r} must be one word without quotes or backslashes")
    return value


def encode_command(line: str) -> bytes:
    """The bytes to write for one command line; refuses lines Asterisk would split."""
    if "\n" in line or "\r" in line or "\x00" in line:
        raise ValueError(f"AGI command contains a line break or NUL: {line[:60]!r}")
    data = line.encode("utf-8") + b"\n"
    if len(data) > MAX_COMMAND_BYTES + 1:
        raise ValueError(
            f"AGI command of {len(data) - 1} bytes is over {MAX_COMMAND_BYTES}: "
            "Asterisk would cut it and run the rest as another command"
        )
    return data

"""Asterisk's side of FastAGI: what a channel running `AGI(agi://host:port/script,...)` does.

Byte-true to the Asterisk 22.10.1 recordings in shared/fixtures/asterisk/*.agi.* and to
res/res_agi.c: the env block (launch_netscript + setup_env, same keys, same order), the
command line reader (fgets into an 8192-byte buffer), the argument splitter (parse_args,
ported below), the reply texts, `HANGUP` in front of the next reply once the channel is
gone, 511 for commands that need a live channel, and AGISTATUS at the end.

Deliberately independent of gateway/: this is the other end of the wire, and sharing the
quoting or parsing code would let a bug on one side hide the same bug on the other.

Known gaps: only the commands callgate uses are implemented (others answer 510, which a
real Asterisk would not); 520 usage texts other than SET VARIABLE's are rendered from the
XML docs in res_agi.c and were not recorded; GET FULL VARIABLE substitutes plain
`${NAME}` references only; channel variables are not inherited or shared with sim/world.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ASTERISK_VERSION = "22.10.1"
MAX_ARGS = 128  # res_agi.c
AGI_BUF_LEN = 8192  # res_agi.c: fgets buffer; a command line is cut at AGI_BUF_LEN - 1
MAX_AGI_CONNECT = 2.0  # res_agi.c: connect timeout, ms / 1000
GETVAR_MAX = 1023  # handle_getvariable: char tempstr[1024]
DEFAULT_ENDPOS = 3520  # the recorded `beep`

# Keys setup_env writes, in its order, after agi_network / agi_network_script.
ENV_KEYS = (
    "agi_request",
    "agi_channel",
    "agi_language",
    "agi_type",
    "agi_uniqueid",
    "agi_version",
    "agi_callerid",
    "agi_calleridname",
    "agi_callingpres",
    "agi_callingani2",
    "agi_callington",
    "agi_callingtns",
    "agi_dnid",
    "agi_rdnis",
    "agi_context",
    "agi_extension",
    "agi_priority",
    "agi_enhanced",
    "agi_accountcode",
    "agi_threadid",
)

RESULT_511 = b"511 Command Not Permitted on a dead channel or intercept routine\n"
RESULT_510 = b"510 Invalid or unknown command\n"

# ast_channel_state values used here (channel.h).
STATE_RING, STATE_UP = 4, 6


def parse_agi_args(line: str) -> list[str]:
    """Port of res_agi.c parse_args: how Asterisk splits a command line into words."""
    words: list[list[str]] = []
    quoted = escaped = False
    whitespace = True
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                words.append([])  # a quote after whitespace starts a word, even ""
                whitespace = False
            continue
        if ch in " \t" and not quoted and not escaped:
            whitespace = True
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            if len(words) >= MAX_ARGS - 1:
                continue  # "Too many arguments, truncating"
            words.append([])
            whitespace = False
        words[-1].append(ch)
        escaped = False
    return ["".join(word) for word in words]


def _ast_false(value: str | None) -> bool:
    return value is not None and value.strip().lower() in {"no", "false", "n", "f", "0", "off"}


def _atoi(text: str) -> int:
    """C atoi/sscanf("%d"): leading number, 0 if none."""
    match = re.match(r"\s*([+-]?\d+)", text)
    return int(match.group(1)) if match else 0


def _is_int(text: str) -> bool:
    return re.match(r"\s*[+-]?\d", text) is not None


# 520 usage texts (ast_xmldoc_build_description of each command). Only SET VARIABLE's
# was recorded (b1); the others are the XML <para> texts of res_agi.c 22.10.1.
USAGE = {
    ("set", "variable"): "Sets a variable to the current channel.",
    ("get", "variable"): (
        "Returns 0 if variablename is not set. Returns 1 if variablename is set and returns "
        "the variable in parentheses.\nExample return code: 200 result=1 (testvariable)"
    ),
    ("get", "full", "variable"): (
        "Evaluates the given expression against the channel specified by channelname, or the "
        "current channel if channelname is not provided.\nUnlike GET VARIABLE, the expression "
        "is processed in a manner similar to dialplan evaluation, allowing complex and "
        "built-in variables to be accessed, e.g. The time is ${EPOCH}\nReturns 0 if no "
        "channel matching channelname exists, 1 otherwise.\nExample return code: 200 "
        "result=1 (The time is 1578493800)"
    ),
    ("exec",): (
        "Executes application with given options.\nReturns whatever the application "
        "returns, or -2 on failure to find application."
    ),
    ("stream", "file"): (
        "Send the given file, allowing playback to be interrupted by the given digits, if "
        "any. Returns 0 if playback completes without a digit being pressed, or the ASCII "
        "numerical value of the digit if one was pressed, or -1 on error or if the channel "
        "was disconnected. If musiconhold is playing before calling stream file it will be "
        "automatically stopped and will not be restarted after completion.\nIt sets the "
        "following channel variables upon completion:"
    ),
    ("say", "number"): (
        "Say a given number, returning early if any of the given DTMF digits are received "
        "on the channel. Returns 0 if playback completes without a digit being pressed, or "
        "the ASCII numerical value of the digit if one was pressed or -1 on error/hangup."
    ),
    ("get", "data"): (
        "Stream the given file, and receive DTMF data.\nReturns the digits received from "
        "the channel at the other end."
    ),
    ("answer",): (
        "Answers channel if not already in answer state. Returns -1 on channel failure, or 0 "
        "if successful."
    ),
    ("hangup",): (
        "Hangs up the specified channel. If no channel name is given, hangs up the current channel"
    ),
    ("channel", "status"): (
        "Returns the status of the specified channelname. If no channel name is given then "
        "returns the status of the current channel.\nReturn values:"
    ),
    ("verbose",): (
        "Sends message to the console via verbose message system. level is the verbose level "
        "(1-4). Always returns 1"
    ),
    ("noop",): "Does nothing.",
}


class _ShowUsage(Exception):
    """RESULT_SHOWUSAGE from a command handler."""


@dataclass(frozen=True)
class FastAgiOutcome:
    """How AGI() ended. `transcript` holds ("RX", bytes Asterisk sent) and ("TX", bytes the
    server sent) in order, the labels of the recordings' timeline files."""

    status: str  # AGISTATUS: SUCCESS, FAILURE or HANGUP
    variables: dict[str, str]
    commands: tuple[str, ...]
    transcript: tuple[tuple[str, bytes], ...]

    @property
    def rx_bytes(self) -> bytes:
        return b"".join(data for direction, data in self.transcript if direction == "RX")




class _Wire(asyncio.Protocol):
    """The socket side of one AGI() run: bytes in a buffer, and a way to wait for more.

    A plain protocol rather than asyncio streams: a load generator opens thousands of
    these a second, and streams cost it more CPU than the gateway under test spends."""

    def __init__(self, loop: asyncio.AbstractEventLoop, buffer: bytearray) -> None:
        self._loop = loop
        self.buffer = buffer
        self.transport: asyncio.BaseTransport | None = None
        self.eof = False
        self.lost = False
        self._waiter: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return True  # half-open: replies to commands still buffered may still go out

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = self.lost = True
        self._wake()
        if not self._closed.done():
            self._closed.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def readable(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def write(self, data: bytes) -> None:
        transport: Any = self.transport  # uvloop's transports are not asyncio's classes
        if self.lost or transport is None or transport.is_closing():
            raise ConnectionResetError("the AGI server closed the connection")
        transport.write(data)

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if not self._closed.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await asyncio.shield(self._closed)


class FastAgiCall:
    """One run of the AGI() application: opens a new TCP connection, sends the env block,
    answers commands until the server closes the socket.

    `variables` are the channel's variables (copied; read them back from the outcome or
    `.variables`). `args` become agi_arg_1..n. `env_overrides` replace env values (keys of
    ENV_KEYS only). `dtmf` holds digits the caller will press, consumed by GET DATA and by
    STREAM FILE / SAY NUMBER escape digits. `sound_files` maps file name to its length
    (endpos); None means every file exists and is `beep`-sized. `app_results` gives EXEC's
    result per application (lower-case name), 0 by default. The env block goes out a
    write per line, as res_agi.c writes it; `env_split_at` cuts it into writes at these
    byte offsets instead, with a loop turn between them (a recording's chunks).
    """

    # Channel names, unique ids and thread ids only need to look like Asterisk's and
    # differ; os.urandom per id (secrets) was a visible share of a load generator's CPU.
    _ids = random.Random()

    def __init__(
        self,
        host: str,
        port: int,
        script: str,
        env_overrides: Mapping[str, str] | None = None,
        variables: Mapping[str, str] | None = None,
        *,
        args: Sequence[str] = (),
        dtmf: str = "",
        sound_files: Mapping[str, int] | None = None,
        app_results: Mapping[str, int] | None = None,
        env_split_at: Sequence[int] = (),
        connect_timeout: float = MAX_AGI_CONNECT,
    ) -> None:
        self.host = host
        self.port = port
        self.script = script
        self.variables: dict[str, str] = dict(variables or {})
        self.env = self._build_env(env_overrides or {}, args)
        self._dtmf = dtmf
        self._sound_files = sound_files
        self._app_results = {k.lower(): v for k, v in (app_results or {}).items()}
        self._env_split_at = sorted(env_split_at)
        self._connect_timeout = connect_timeout
        self._state = STATE_RING
        self._dead = False
        self._notice_pending = False
        self._failed = False
        self._started = False
        # read once as AGI() starts, as res_agi.c does
        self._send_sighup = not _ast_false(self.variables.get("AGISIGHUP"))
        self._buffer = bytearray()
        self._commands: list[str] = []
        self._transcript: list[tuple[str, bytes]] = []

    # ---- the env block ----------------------------------------------------------------------

    def _build_env(self, overrides: Mapping[str, str], args: Sequence[str]) -> dict[str, str]:
        unknown = set(overrides) - set(ENV_KEYS)
        if unknown:
            raise ValueError(f"Asterisk never sends {sorted(unknown)}; env keys are {ENV_KEYS}")
        context = overrides.get("agi_context", "default")
        exten = overrides.get("agi_extension", "s")
        env = {
            "agi_request": f"agi://{self.host}:{self.port}/{self.script}",
            "agi_channel": f"Local/{exten}@{context}-{self._ids.getrandbits(32):08x};2",
            "agi_language": "en",
            "agi_type": "Local",
            "agi_uniqueid": f"{int(time.time())}.{self._ids.randrange(1_000_000)}",
            "agi_version": ASTERISK_VERSION,
            "agi_callerid": "unknown",
            "agi_calleridname": "unknown",
            "agi_callingpres": "0",
            "agi_callingani2": "0",
            "agi_callington": "0",
            "agi_callingtns": "0",
            "agi_dnid": "unknown",
            "agi_rdnis": "unknown",
            "agi_context": context,
            "agi_extension": exten,
            "agi_priority": "1",
            "agi_enhanced": "0.0",
            "agi_accountcode": "",
            "agi_threadid": str(140_000_000_000_000 + self._ids.randrange(10**12)),
        }
        env.update(overrides)
        for number, arg in enumerate(args, start=1):
            env[f"agi_arg_{number}"] = arg
        for key, value in env.items():
            if "\n" in value:
                raise ValueError(f"{key} contains a newline; Asterisk values never do")
        return env

    def env_block(self) -> bytes:
        """The bytes launch_netscript + setup_env write."""
        lines = ["agi_network: yes\n"]
        if self.script:  # launch_netscript omits the line for agi://host with no path
            lines.append(f"agi_network_script: {self.script}\n")
        lines.extend(f"{key}: {value}\n" for key, value in self.env.items())
        lines.append("\n")
        return "".join(lines).encode("utf-8", "surrogateescape")

    # ---- the channel, from the outside ----------------------------------------------------------

    @property
    def dead(self) -> bool:
        return self._dead

    def hangup(self) -> None:
        """The channel hangs up (caller, AMI Hangup, timeout). Asterisk tells the server with
        `HANGUP` in front of the reply to its next command (unless AGISIGHUP=no)."""
        if not self._dead:
            self._dead = True
            self._notice_pending = True

    def press(self, digits: str) -> None:
        """The caller presses DTMF digits."""
        self._dtmf += digits

    # ---- running AGI() --------------------------------------------------------------------------

    async def run(self) -> FastAgiOutcome:
        if self._started:
            raise RuntimeError("a FastAgiCall runs once; create a new one per AGI() call")
        self._started = True
        loop = asyncio.get_running_loop()
        wire = _Wire(loop, self._buffer)
        try:
            async with asyncio.timeout(self._connect_timeout):
                transport, _ = await loop.create_connection(lambda: wire, self.host, self.port)
        except (OSError, TimeoutError):
            return self._finish("FAILURE")
        wire.transport = transport  # uvloop may call connection_made a loop turn later
        try:
            await self._send_env(wire)
            while True:
                line = await self._next_line(wire)
                if line is None:
                    break
                for part in self.answer(line):
                    wire.write(part)
        except (ConnectionError, OSError):
            pass  # the server went away mid-reply: AGI() ends as on a close
        finally:
            await wire.close()
        return self.outcome()

    def outcome(self) -> FastAgiOutcome:
        """How AGI() ended, once the server has closed the connection."""
        if self._dead:
            return self._finish("HANGUP")
        return self._finish("FAILURE" if self._failed else "SUCCESS")

    def answer(self, line: bytes) -> list[bytes]:
        """The bytes Asterisk writes back for one command line, recorded in the transcript.
        A hangup already noticed goes in front; one this command causes (HANGUP, EXEC
        Hangup) is told in front of the next reply (c6)."""
        notice, self._notice_pending = self._notice_pending, False
        reply = self._handle(line)
        if notice and self._send_sighup:
            reply = [b"HANGUP\n", *reply]
        for part in reply:
            self._transcript.append(("RX", part))
        return reply

    def failed_to_connect(self) -> FastAgiOutcome:
        self._started = True
        return self._finish("FAILURE")

    def _finish(self, status: str) -> FastAgiOutcome:
        self.variables["AGISTATUS"] = status
        return FastAgiOutcome(
            status=status,
            variables=dict(self.variables),
            commands=tuple(self._commands),
            transcript=tuple(self._transcript),
        )

    async def _send_env(self, wire: _Wire) -> None:
        block = self.env_block()
        if not self._env_split_at:  # a write per line, as launch_netscript/setup_env do
            self._transcript.append(("RX", block))
            for line in block.splitlines(keepends=True):
                wire.write(line)
            return
        start = 0
        for cut in [*self._env_split_at, len(block)]:
            if start < cut <= len(block):
                self._transcript.append(("RX", block[start:cut]))
                wire.write(block[start:cut])
                if self._env_split_at:
                    await asyncio.sleep(0)
                start = cut

    async def _next_line(self, wire: _Wire) -> bytes | None:
        """A command line as res_agi.c's fgets loop reads it (without its LF)."""
        while True:
            line = self.take_line(wire.eof)
            if line is not None or wire.eof:
                return line
            await wire.readable()

    def take_line(self, eof: bool) -> bytes | None:
        """The next command line in the received bytes (fed with `feed`), or None when
        there is none yet (or, at `eof`, none left)."""
        limit = AGI_BUF_LEN - 1
        buffer = self._buffer
        newline = buffer.find(b"\n", 0, limit)
        if newline >= 0:
            line = bytes(buffer[:newline])
            del buffer[: newline + 1]
            self._transcript.append(("TX", line + b"\n"))
            return line
        if len(buffer) >= limit:  # cut: the rest runs as the next command
            line = bytes(buffer[:limit])
            del buffer[:limit]
            self._transcript.append(("TX", line))
            return line
        if eof and buffer:
            line = bytes(buffer)  # a last line without LF still runs
            buffer.clear()
            self._transcript.append(("TX", line))
            return line
        return None

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def start(self) -> bytes:
        """For drivers that do their own socket work (sim/agi_blast.py): mark the run
        started and return the env block to send, recorded in the transcript."""
        if self._started:
            raise RuntimeError("a FastAgiCall runs once; create a new one per AGI() call")
        self._started = True
        block = self.env_block()
        self._transcript.append(("RX", block))
        return block

    # ---- commands -----------------------------------------------------------------------------

    def _handle(self, raw: bytes) -> list[bytes]:
        text = raw.decode("utf-8", "surrogateescape")
        self._commands.append(text)
        argv = parse_agi_args(text)
        found = self._find(argv)
        if found is None:
            return [RESULT_510]
        words, (method, dead_ok) = found
        if self._dead and not dead_ok:
            return [RESULT_511]
        try:
            handler: Callable[[list[str]], bytes] = getattr(self, method)
            return [handler(argv)]
        except _ShowUsage:
            usage = USAGE.get(words, "")
            if not usage:
                return [b"520 Invalid command syntax.  Proper usage not available.\n"]
            return [
                b"520-Invalid command syntax.  Proper usage follows:\n",
                usage.encode() + b"\n",
                b"520 End of proper usage.\n",
            ]

    @staticmethod
    def _find(argv: list[str]) -> tuple[tuple[str, ...], tuple[str, bool]] | None:
        """find_command: the command's words are a case-insensitive prefix of argv."""
        lowered = tuple(word.lower() for word in argv[:_LONGEST_COMMAND])
        for size in range(len(lowered), 0, -1):
            entry = _COMMANDS.get(lowered[:size])
            if entry is not None:
                return lowered[:size], entry
        return None

    def _lookup(self, name: str) -> str | None:
        """pbx_retrieve_variable / ast_func_read for what a sim channel knows."""
        env = self.env
        if name.endswith(")"):
            functions = {
                "CALLERID(num)": env["agi_callerid"],
                "CALLERID(name)": env["agi_calleridname"],
                "CHANNEL(language)": env["agi_language"],
            }
            return functions.get(name, self.variables.get(name))
        builtins = {
            "EXTEN": env["agi_extension"],
            "CONTEXT": env["agi_context"],
            "PRIORITY": env["agi_priority"],
            "CHANNEL": env["agi_channel"],
            "UNIQUEID": env["agi_uniqueid"],
            "CALLINGPRES": env["agi_callingpres"],
            "CALLINGANI2": env["agi_callingani2"],
            "CALLINGTON": env["agi_callington"],
            "CALLINGTNS": env["agi_callingtns"],
            "EPOCH": str(int(time.time())),
        }
        if name in builtins:
            return builtins[name]
        return self.variables.get(name)

    def _get_variable(self, argv: list[str]) -> bytes:
        if len(argv) != 3:
            raise _ShowUsage
        value = self._lookup(argv[2]) if argv[2] else None
        if value is None:
            return b"200 result=0\n"
        data = value.encode("utf-8", "surrogateescape")[:GETVAR_MAX]
        return b"200 result=1 (" + data + b")\n"

    def _get_full_variable(self, argv: list[str]) -> bytes:
        if len(argv) not in (4, 5):
            raise _ShowUsage
        if len(argv) == 5 and argv[4] != self.env["agi_channel"]:
            return b"200 result=0\n"
        value = re.sub(r"\$\{([^${}]*)\}", lambda m: self._lookup(m.group(1)) or "", argv[3])
        return b"200 result=1 (" + value.encode("utf-8", "surrogateescape") + b")\n"

    def _set_variable(self, argv: list[str]) -> bytes:
        if len(argv) != 4:
            raise _ShowUsage
        self._setvar(argv[2], argv[3])
        return b"200 result=1\n"

    def _setvar(self, name: str, value: str) -> None:
        # pbx_builtin_setvar_helper: leading _ / __ only mark inheritance
        self.variables[name.removeprefix("_").removeprefix("_")] = value

    def _exec(self, argv: list[str]) -> bytes:
        if len(argv) < 2:
            raise _ShowUsage
        app = argv[1].lower()
        options = argv[2] if len(argv) >= 3 else ""
        result = self._app_results.get(app, 0)
        if app == "set" and "=" in options:
            name, _, value = options.partition("=")
            self._setvar(name, value)
        elif app == "mset":
            # pbx_builtin_setvar_multiple: standard app args split on ',' (quotes and
            # backslashes processed), then each pair on its first '='.
            for pair in _app_args(options):
                name, eq, value = pair.partition("=")
                if eq:
                    self._setvar(name, value)
        elif app == "hangup":
            self.hangup()
            result = -1
        if result == -1 and not self._dead:
            self._failed = True  # RESULT_FAILURE not caused by a hangup
        return f"200 result={result}\n".encode()

    def _play(self, escape_digits: str) -> str | None:
        """A pending digit in escape_digits interrupts the prompt."""
        if self._dtmf and self._dtmf[0] in escape_digits:
            digit, self._dtmf = self._dtmf[0], self._dtmf[1:]
            return digit
        return None

    def _stream_file(self, argv: list[str]) -> bytes:
        if len(argv) not in (4, 5):
            raise _ShowUsage
        if len(argv) == 5 and not _is_int(argv[4]):
            raise _ShowUsage
        offset = _atoi(argv[4]) if len(argv) == 5 else 0
        if self._sound_files is None:
            length: int | None = DEFAULT_ENDPOS
        else:
            length = self._sound_files.get(argv[2])
        if length is None:
            self._failed = True
            return f"200 result=-1 endpos={offset}\n".encode()
        digit = self._play(argv[3])
        self._setvar("PLAYBACKSTATUS", "SUCCESS")
        if digit is not None:
            return f"200 result={ord(digit)} endpos={max(offset, length // 2)}\n".encode()
        return f"200 result=0 endpos={length}\n".encode()

    def _say_number(self, argv: list[str]) -> bytes:
        if len(argv) not in (4, 5) or not _is_int(argv[2]):
            raise _ShowUsage
        digit = self._play(argv[3])
        return f"200 result={ord(digit) if digit else 0}\n".encode()

    def _get_data(self, argv: list[str]) -> bytes:
        if len(argv) < 3:
            raise _ShowUsage
        max_digits = _atoi(argv[4]) if len(argv) >= 5 else 1024
        if max_digits <= 0:
            max_digits = 1024
        pending = self._dtmf
        end = pending.find("#")
        if 0 <= end < max_digits:  # "#" ends the entry; at max digits it stays queued
            self._dtmf = pending[end + 1 :]
            return f"200 result={pending[:end]}\n".encode()
        if len(pending) >= max_digits:
            self._dtmf = pending[max_digits:]
            return f"200 result={pending[:max_digits]}\n".encode()
        self._dtmf = ""
        return f"200 result={pending} (timeout)\n".encode()

    def _answer(self, argv: list[str]) -> bytes:
        self._state = STATE_UP
        return b"200 result=0\n"

    def _hangup(self, argv: list[str]) -> bytes:
        if len(argv) == 1 or (len(argv) == 2 and argv[1] == self.env["agi_channel"]):
            self.hangup()
            return b"200 result=1\n"
        if len(argv) == 2:
            return b"200 result=-1\n"
        raise _ShowUsage

    def _channel_status(self, argv: list[str]) -> bytes:
        if len(argv) == 2 or (len(argv) == 3 and argv[2] == self.env["agi_channel"]):
            return f"200 result={self._state}\n".encode()
        if len(argv) == 3:
            return b"200 result=-1\n"
        raise _ShowUsage

    def _verbose(self, argv: list[str]) -> bytes:
        if len(argv) < 2:
            raise _ShowUsage
        return b"200 result=1\n"

    def _noop(self, argv: list[str]) -> bytes:
        return b"200 result=0\n"


# find_command's table for what the sim implements: words -> (method, allowed when dead).
# Methods by name, so a subclass (sim/agi_link.py) can override one.
_COMMANDS: dict[tuple[str, ...], tuple[str, bool]] = {
    ("answer",): ("_answer", False),
    ("channel", "status"): ("_channel_status", False),
    ("exec",): ("_exec", True),
    ("get", "data"): ("_get_data", False),
    ("get", "full", "variable"): ("_get_full_variable", True),
    ("get", "variable"): ("_get_variable", True),
    ("hangup",): ("_hangup", False),
    ("noop",): ("_noop", True),
    ("say", "number"): ("_say_number", False),
    ("set", "variable"): ("_set_variable", True),
    ("stream", "file"): ("_stream_file", False),
    ("verbose",): ("_verbose", True),
}
_LONGEST_COMMAND = max(len(words) for words in _COMMANDS)


def _app_args(data: str) -> list[str]:
    """Asterisk's standard application-argument split (ast_app_separate_args): ','
    separates unless inside double quotes; quotes are removed and a backslash keeps the
    next character."""
    out: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in data:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
    out.append("".join(current))
    return out

"""Replies to commands, as the recordings show Asterisk writing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.agi import AgiProtocolError, parse_reply
from gateway.agi.protocol import ends_multiline, is_hangup_notice, starts_multiline
from tests.agi.recordings import AGI_TIMELINES, exchanges, timeline


def _replies(path: Path) -> list[tuple[bytes, bytes]]:
    _, found = exchanges(timeline(path))
    return [(x.command, x.reply.removeprefix(b"HANGUP\n")) for x in found]


@pytest.mark.parametrize("path", AGI_TIMELINES, ids=lambda p: p.name.split(".")[0])
def test_every_recorded_reply_parses(path: Path) -> None:
    for command, reply in _replies(path):
        parsed = parse_reply(reply)
        assert parsed.code in (200, 510, 511, 520), (command, reply)
        if parsed.code == 200:
            assert parsed.result is not None


def test_recorded_b1_replies(asterisk_fixtures: Path) -> None:
    replies = {cmd: parse_reply(r) for cmd, r in _replies(
        asterisk_fixtures / "b1-originate-answer-5s-talk.agi.timeline.txt")}

    got = replies[b"GET VARIABLE GW_CALL_ID\n"]
    assert (got.code, got.result, got.value) == (200, "1", "call-b-0001")
    unset = replies[b"GET VARIABLE NO_SUCH_VAR\n"]
    assert (unset.result, unset.value) == ("0", None)
    played = replies[b'STREAM FILE beep ""\n']
    assert (played.result, dict(played.extras)) == ("0", {"endpos": "3520"})
    usage = replies[b"SET VARIABLE\n"]
    assert usage.code == 520
    assert usage.text.splitlines() == [
        "520-Invalid command syntax.  Proper usage follows:",
        "Sets a variable to the current channel.",
        "520 End of proper usage.",
    ]
    assert replies[b"NO SUCH COMMAND\n"].code == 510


def test_recorded_c6_dead_channel(asterisk_fixtures: Path) -> None:
    path = asterisk_fixtures / "c6-originate-agi-denied-hangup.agi.timeline.txt"
    _, found = exchanges(timeline(path))
    after_hangup = [x for x in found if x.reply.startswith(b"HANGUP\n")]
    assert [x.command for x in after_hangup] == [b"GET VARIABLE GW_AUTH\n"]
    codes = {x.command: parse_reply(x.reply.removeprefix(b"HANGUP\n")).code for x in found}
    assert codes[b'STREAM FILE beep ""\n'] == 511
    assert codes[b"ANSWER\n"] == 511
    assert codes[b"SET VARIABLE AFTER_HANGUP 1\n"] == 200


@pytest.mark.parametrize(
    ("raw", "result", "value", "extras"),
    [
        (b"200 result=1 (a) b (c)\n", "1", "a) b (c", {}),
        (b"200 result=1 ()\n", "1", "", {}),
        (b"200 result= (timeout)\n", "", "timeout", {}),
        (b"200 result=0 (timeout) endpos=1234\n", "0", "timeout", {"endpos": "1234"}),
        (b"200 result=-1\n", "-1", None, {}),
        (b"200 result=1 (x)\r\n", "1", "x", {}),
    ],
)
def test_reply_shapes(raw: bytes, result: str, value: str | None, extras: dict[str, str]) -> None:
    reply = parse_reply(raw)
    assert (reply.result, reply.value, dict(reply.extras)) == (result, value, extras)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"HELLO\n",
        b"200 ok\n",
        b"200 result=1 (unterminated\n",
        b"520-Invalid command syntax.  Proper usage follows:\nno end\n",
        b"200 result=1\n200 result=1\n",
        b"200 result=1 junk\n",
    ],
)
def test_not_a_reply_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(AgiProtocolError):
        parse_reply(raw)


def test_result_int_of_a_non_number_is_a_protocol_error() -> None:
    with pytest.raises(AgiProtocolError):
        _ = parse_reply(b"200 result=12a\n").result_int


def test_framing_helpers() -> None:
    assert is_hangup_notice(b"HANGUP\n")
    assert not is_hangup_notice(b"HANGUP now\n")
    assert starts_multiline(b"520-Invalid command syntax.\n")
    assert not starts_multiline(b"520 Invalid command syntax.\n")
    assert ends_multiline(b"520 End of proper usage.\n")
    assert not ends_multiline(b"Example return code: 200 result=1 (x)\n")

"""FrameParser and encode_action against every recording and against hostile input."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from ami.frames import FrameParser, Message, encode_action
from tests.ami.recordings import rx_bytes, rx_files, timeline, timeline_of

RX_FILES = rx_files()
BANNER = b"Asterisk Call Manager/11.0.0\r\n"


@cache
def parsed_whole(path: Path) -> list[Message]:
    return FrameParser().feed(rx_bytes(path))


def feed_chunks(data: bytes, cuts: list[int]) -> tuple[list[Message], FrameParser]:
    parser = FrameParser()
    out: list[Message] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        out += parser.feed(data[start:cut])
        start = max(start, cut)
    return out, parser


def test_every_recording_is_present() -> None:
    assert len(RX_FILES) >= 20, "recordings missing: shared/fixtures/asterisk"


@pytest.mark.parametrize("path", RX_FILES, ids=lambda p: p.name.split(".")[0])
def test_recording_parses_every_frame_in_one_feed(path: Path) -> None:
    data = rx_bytes(path)
    parser = FrameParser()
    messages = parser.feed(data)
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert len(messages) == data.count(b"\r\n\r\n")
    assert all(m.is_event or m.is_response for m in messages)
    assert parser.dropped_frames == 0


@pytest.mark.parametrize("path", RX_FILES, ids=lambda p: p.name.split(".")[0])
def test_recording_parses_the_same_at_the_real_recv_boundaries(path: Path) -> None:
    chunks = [c.data for c in timeline(timeline_of(path)) if c.direction == "RX"]
    assert b"".join(chunks) == rx_bytes(path)
    parser = FrameParser()
    at_boundaries = [m for chunk in chunks for m in parser.feed(chunk)]
    assert at_boundaries == FrameParser().feed(rx_bytes(path))


@pytest.mark.parametrize("path", RX_FILES, ids=lambda p: p.name.split(".")[0])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_recording_parses_the_same_in_any_chunking(path: Path, data: st.DataObject) -> None:
    raw = rx_bytes(path)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=60), label="cuts")
    chunked, parser = feed_chunks(raw, cuts)
    assert chunked == parsed_whole(path)
    assert parser.banner == "Asterisk Call Manager/11.0.0"


def test_byte_at_a_time_keeps_every_frame() -> None:
    raw = rx_bytes(RX_FILES[0])
    parser = FrameParser()
    out = [m for i in range(len(raw)) for m in parser.feed(raw[i : i + 1])]
    assert out == FrameParser().feed(raw)


def test_message_accessors_on_recorded_frames() -> None:
    messages = FrameParser().feed(rx_bytes(next(p for p in RX_FILES if p.name.startswith("b1"))))
    login = messages[0]
    assert login.is_response and not login.is_event
    assert login.name == "Success" and login.action_id == "login-1"
    orig = next(m for m in messages if m.name == "OriginateResponse")
    # OriginateResponse carries `Response: Success` too; it is still an event.
    assert orig.is_event and not orig.is_response
    assert orig.get("response") == "Success" and orig.get("REASON") == "4"
    newchannel = next(m for m in messages if m.name == "Newchannel")
    assert newchannel.get("AccountCode") == ""  # sent as `AccountCode: `
    assert newchannel.get("Missing") is None and newchannel.get("Missing", "x") == "x"


def test_repeated_headers_are_kept_in_order() -> None:
    a1 = FrameParser().feed(rx_bytes(next(p for p in RX_FILES if p.name.startswith("a1"))))
    cmd = next(m for m in a1 if m.action_id == "cmd-2")
    assert cmd.get_all("Output")[0].startswith("Module ")
    assert cmd.get_all("Output")[-1] == "2 modules loaded"
    assert len(cmd.get_all("output")) == 4
    a4 = FrameParser().feed(rx_bytes(next(p for p in RX_FILES if p.name.startswith("a4"))))
    status = next(m for m in a4 if m.name == "Status" and m.action_id == "status-3")
    assert status.get_all("Variable") == ["GW_CALL_ID=call-a-0002", "GW_AUTH=OK"]
    assert status.headers[-1] == ("ActionID", "status-3")


def test_banner_is_not_a_frame_and_bare_lf_works() -> None:
    parser = FrameParser()
    assert parser.feed(b"Asterisk Call Manager/11.0.0\n") == []
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    (msg,) = parser.feed(b"Event: X\nKey: v\n\n")
    assert msg.headers == (("Event", "X"), ("Key", "v"))


def test_value_spacing_is_exact() -> None:
    (msg,) = FrameParser().feed(BANNER + b"Event: X\r\nA: \r\nB:\r\nC:  two\r\nD: a: b \r\n\r\n")
    assert msg.get("A") == "" and msg.get("B") == ""
    assert msg.get("C") == " two" and msg.get("D") == "a: b "


def test_blank_lines_between_frames_are_ignored() -> None:
    out = FrameParser().feed(BANNER + b"\r\n\r\nEvent: A\r\n\r\n\r\n\nEvent: B\r\n\r\n")
    assert [m.name for m in out] == ["A", "B"]


def test_line_without_colon_is_logged_and_skipped() -> None:
    with capture_logs() as logs:
        (msg,) = FrameParser().feed(BANNER + b"Event: X\r\nno colon here\r\nK: v\r\n\r\n")
    assert msg.headers == (("Event", "X"), ("K", "v"))
    assert any(e["event"] == "ami_line_without_colon" for e in logs)


@pytest.mark.parametrize("chunk", [None, 4096], ids=["one-feed", "4k-reads"])
def test_megabyte_line_drops_its_frame_and_keeps_the_next(chunk: int | None) -> None:
    data = (
        BANNER
        + b"Event: Before\r\n\r\n"
        + b"Event: Huge\r\nValue: "
        + b"x" * (1024 * 1024)
        + b"\r\nMore: y\r\n\r\n"
        + b"Event: After\r\nK: v\r\n\r\n"
    )
    parser = FrameParser()
    with capture_logs() as logs:
        if chunk is None:
            out = parser.feed(data)
        else:
            out = [m for i in range(0, len(data), chunk) for m in parser.feed(data[i : i + chunk])]
    assert [m.name for m in out] == ["Before", "After"]
    assert out[1].get("K") == "v"
    assert parser.dropped_frames == 1
    assert [e["event"] for e in logs].count("ami_frame_oversized") == 1


def test_oversized_frame_of_many_lines_is_dropped() -> None:
    parser = FrameParser(max_frame=10_000)
    body = b"".join(b"Output: %d\r\n" % i for i in range(5000))
    with capture_logs() as logs:
        out = parser.feed(BANNER + b"Response: Success\r\n" + body + b"\r\nEvent: Next\r\n\r\n")
    assert [m.name for m in out] == ["Next"]
    assert any(e["event"] == "ami_frame_oversized" for e in logs)


def test_invalid_utf8_is_replaced_and_logged() -> None:
    with capture_logs() as logs:
        out = FrameParser().feed(
            BANNER + b"Event: X\r\nCallerIDName: J\xfcrgen\xff\r\n\r\nEvent: Y\r\n\r\n"
        )
    assert out[0].get("CallerIDName") == "J\ufffdrgen\ufffd"
    assert out[1].name == "Y"
    assert any(e["event"] == "ami_frame_bad_utf8" for e in logs)


def test_utf8_character_split_across_reads_is_intact() -> None:
    data = BANNER + "Event: X\r\nCallerIDName: Jürgen 😀\r\n\r\n".encode()
    ue = data.index("ü".encode()) + 1
    emoji = data.index("😀".encode()) + 2
    out, _ = feed_chunks(data, [ue, emoji])
    assert out[0].get("CallerIDName") == "Jürgen 😀"


def test_legacy_command_output_becomes_output_headers() -> None:
    data = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\n"
        b"Module: looks like a header\nsecond line\n\nafter a blank\n--END COMMAND--\r\n\r\n"
        b"Event: Next\r\n\r\n"
    )
    for cuts in ([], list(range(0, len(data), 3))):
        parser = FrameParser()
        parser.feed(BANNER)
        out, _ = feed_chunks(data, cuts)
        out = parser.feed(data) if not cuts else out
        assert out[0].get("ActionID") == "7" and out[0].name == "Follows"
        assert out[0].get_all("Output") == [
            "Module: looks like a header",
            "second line",
            "",
            "after a blank",
        ]
        assert out[1].name == "Next"


def test_legacy_command_terminator_glued_to_last_line_and_empty_output() -> None:
    parser = FrameParser()
    parser.feed(BANNER)
    glued, empty = parser.feed(
        b"Response: Follows\r\nPrivilege: Command\r\nlast line--END COMMAND--\r\n\r\n"
        b"Response: Follows\r\nPrivilege: Command\r\n--END COMMAND--\r\n\r\n"
    )
    assert glued.get_all("Output") == ["last line"]
    assert empty.get_all("Output") == [] and empty.get("Privilege") == "Command"


# -- hypothesis fuzz ---------------------------------------------------------------------

_keys = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                min_size=1, max_size=20)
_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=40,
)
_frames = st.lists(st.tuples(_keys, _values), min_size=1, max_size=8).filter(
    lambda h: h[0][0].lower() != "response"
)


@settings(max_examples=150, deadline=None)
@given(frames=st.lists(_frames, min_size=1, max_size=6), data=st.data())
def test_any_well_formed_frames_round_trip_in_any_chunking(
    frames: list[list[tuple[str, str]]], data: st.DataObject
) -> None:
    wire = BANNER + b"".join(
        b"".join(f"{k}: {v}\r\n".encode() for k, v in frame) + b"\r\n" for frame in frames
    )
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=30))
    out, _ = feed_chunks(wire, cuts)
    assert [m.headers for m in out] == [tuple(f) for f in frames]


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=2000), data=st.data())
def test_garbage_never_raises_and_a_valid_frame_after_it_parses(
    garbage: bytes, data: st.DataObject
) -> None:
    valid = b"Event: Hangup\r\nUniqueid: 1.2\r\nCause: 16\r\n\r\n"
    wire = garbage + b"\r\n\r\n" + valid
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=10))
    with capture_logs():
        out, _ = feed_chunks(wire, cuts)
    assert out and out[-1].headers == (("Event", "Hangup"), ("Uniqueid", "1.2"), ("Cause", "16"))


@settings(max_examples=100, deadline=None)
@given(garbage=st.binary(max_size=300), small_line=st.integers(16, 64))
def test_garbage_with_tiny_limits_never_raises(garbage: bytes, small_line: int) -> None:
    parser = FrameParser(max_line=small_line, max_frame=small_line * 4)
    with capture_logs():
        for i in range(0, len(garbage), 7):
            parser.feed(garbage[i : i + 7])
        out = parser.feed(b"\r\n\r\nEvent: Ok\r\n\r\n")
    assert out[-1].name == "Ok"


# -- encode_action ------------------------------------------------------------------------


def test_encode_action_exact_bytes_pairs_and_mapping() -> None:
    assert encode_action("Ping", (), "p-1") == b"Action: Ping\r\nActionID: p-1\r\n\r\n"
    assert encode_action(
        "Originate",
        [("Channel", "Local/100@gw-out"), ("Variable", "A=1"), ("Variable", "B=2")],
        "o-1",
    ) == (
        b"Action: Originate\r\nActionID: o-1\r\nChannel: Local/100@gw-out\r\n"
        b"Variable: A=1\r\nVariable: B=2\r\n\r\n"
    )
    assert encode_action("Getvar", {"Variable": "X", "Channel": "c"}, "g") == (
        b"Action: Getvar\r\nActionID: g\r\nVariable: X\r\nChannel: c\r\n\r\n"
    )
    assert encode_action("Setvar", [("Value", "")], "s") == (
        b"Action: Setvar\r\nActionID: s\r\nValue: \r\n\r\n"
    )
    assert "Jürgen".encode() in encode_action("Setvar", [("Value", "Jürgen")], "s")


def test_encoded_actions_parse_back() -> None:
    fields = [("Channel", "PJSIP/6001-0000"), ("Variable", "A=1"), ("Variable", "B=2")]
    (msg,) = FrameParser().feed(BANNER + encode_action("Originate", fields, "x-9"))
    assert msg.get("Action") == "Originate" and msg.action_id == "x-9"
    assert msg.get_all("Variable") == ["A=1", "B=2"]


@pytest.mark.parametrize(
    ("name", "fields", "action_id"),
    [
        ("Hangup", [("Channel", "x\r\nAction: Originate")], "h"),
        ("Hangup", [("Channel", "x\nAction: Originate")], "h"),
        ("Hangup", [("Channel", "x\r")], "h"),
        ("Hangup", [("Chan\r\nnel", "x")], "h"),
        ("Hangup\r\nAction: Originate", [], "h"),
        ("Hangup", [], "h\r\nAction: Originate"),
        ("Hangup", [("Action", "Originate")], "h"),
        ("Hangup", [("ActionID", "other")], "h"),
        ("Hangup", [("Bad: key", "v")], "h"),
        ("Hangup", [("", "v")], "h"),
        ("", [], "h"),
    ],
)
def test_encode_action_refuses_header_injection(
    name: str, fields: list[tuple[str, str]], action_id: str
) -> None:
    with pytest.raises(ValueError, match="AMI"):
        encode_action(name, fields, action_id)

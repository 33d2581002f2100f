"""The env block Asterisk sends: every recording parses, bad blocks get a clear reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.agi import BadRequest, parse_env_block
from gateway.agi.protocol import EnvBlockParser
from tests.agi.recordings import AGI_RX, AGI_TIMELINES, env_block, env_mapping, timeline

assert AGI_RX and AGI_TIMELINES, "recordings missing"


def _keyed(block: bytes) -> bytes:
    """The recorded block with its positional AGI() args written as key=value."""
    return block.replace(b"agi_arg_1: ", b"agi_arg_1: dest=").replace(
        b"agi_arg_2: ", b"agi_arg_2: caller="
    )


def _block(script: str = "authorize", *args: str, extra: str = "") -> bytes:
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: agi://gw:4573/{script}",
        "agi_channel: PJSIP/6001-00000001",
        "agi_uniqueid: 1700000000.1",
        "agi_callerid: 6001",
        "agi_calleridname: Desk",
        "agi_extension: 5551234",
    ]
    lines += [f"agi_arg_{n}: {arg}" for n, arg in enumerate(args, start=1)]
    return ("\n".join(lines) + "\n" + extra + "\n").encode()


@pytest.mark.parametrize("path", AGI_RX, ids=lambda p: p.name.split(".")[0])
def test_every_recorded_env_block_parses(path: Path) -> None:
    block = env_block(path)
    recorded = env_mapping(block)

    request = parse_env_block(_keyed(block))

    script = recorded["agi_network_script"]
    assert request.route == "authorize"
    assert request.args == {
        "call": script.split("call=")[1],
        "dest": recorded["agi_arg_1"],
        "caller": recorded["agi_arg_2"],
    }
    assert request.call_id == recorded["agi_uniqueid"]
    assert request.channel == recorded["agi_channel"]
    assert request.caller == recorded["agi_callerid"]
    assert request.extension == recorded["agi_extension"]
    assert request.script == script
    assert list(request.env)[:3] == ["agi_network", "agi_network_script", "agi_request"]
    assert request.env["agi_accountcode"] == ""  # "agi_accountcode: " -> empty value


@pytest.mark.parametrize("path", AGI_RX, ids=lambda p: p.name.split(".")[0])
def test_recorded_positional_args_are_refused_with_the_reason(path: Path) -> None:
    """The lab dialplan passes ${EXTEN},${CALLERID(num)} positionally; callgate's contract
    is key=value, so such a request is a bad_request that names the offending item."""
    block = env_block(path)
    with pytest.raises(BadRequest) as caught:
        parse_env_block(block)
    assert caught.value.framed
    assert caught.value.call_id == env_mapping(block)["agi_uniqueid"]
    assert "agi_arg_1" in caught.value.reason and "not key=value" in caught.value.reason


@pytest.mark.parametrize("path", AGI_TIMELINES, ids=lambda p: p.name.split(".")[0])
def test_env_block_split_like_the_recorded_reads(path: Path) -> None:
    chunks = [c.data for c in timeline(path)]
    env_chunks: list[bytes] = []
    for chunk in chunks:  # RX chunks up to the first server command
        env_chunks.append(chunk)
        if b"\n\n" in chunk:
            break
    assert len(env_chunks) >= 2, "the recordings show the block arriving in two reads"
    parser = EnvBlockParser()
    results = [parser.feed(_keyed(c) if b"agi_arg_1" in c else c) for c in env_chunks]
    assert results[:-1] == [None] * (len(results) - 1)
    assert results[-1] is not None and results[-1].route == "authorize"


def test_env_block_byte_by_byte() -> None:
    block = _block("authorize?tenant=acme", "direction=out")
    parser = EnvBlockParser()
    results = [parser.feed(block[i : i + 1]) for i in range(len(block))]
    assert all(r is None for r in results[:-1])
    last = results[-1]
    assert last is not None and last.args == {"tenant": "acme", "direction": "out"}


def test_args_come_from_query_string_and_agi_args() -> None:
    request = parse_env_block(
        _block("authorize?tenant=acme&dest=+4930123", "direction=out", " trunk=pri1", "card=")
    )
    assert request.route == "authorize"
    assert request.args == {
        "tenant": "acme",
        "dest": "+4930123",  # no form decoding: '+' stays a plus
        "direction": "out",
        "trunk": "pri1",
        "card": "",
    }


def test_same_key_twice_with_same_value_is_fine() -> None:
    request = parse_env_block(_block("authorize?tenant=acme", "tenant=acme"))
    assert request.args == {"tenant": "acme"}


def test_empty_items_are_ignored() -> None:
    request = parse_env_block(_block("release?lease=L1&", "", "  "))
    assert request.route == "release"
    assert request.args == {"lease": "L1"}


def test_route_path_slashes_are_trimmed() -> None:
    assert parse_env_block(_block("/authorize/?tenant=a")).route == "authorize"


@pytest.mark.parametrize(
    ("block", "words"),
    [
        (_block("authorize", "tenant=acme", "acme"), "agi_arg_2 'acme' is not key=value"),
        (_block("authorize?tenant"), "query string item 'tenant' is not key=value"),
        (
            _block("authorize?tenant=acme", "tenant=other"),
            "'tenant' given twice with different values: 'acme' in query string item, "
            "'other' in agi_arg_1",
        ),
        (_block("authorize", "=x"), "has a bad key ''"),
        (_block("authorize", "ten ant=x"), "has a bad key 'ten ant'"),
        (_block("?tenant=a"), "empty route"),
        (
            b"agi_network: yes\nagi_request: agi://gw\nagi_uniqueid: 1.2\n\n",
            "agi_network_script missing",
        ),
        (b"agi_network: yes\nagi_network_script: authorize\n\n", "agi_uniqueid missing"),
        (_block(extra="agi_uniqueid: 9.9\n"), "agi_uniqueid appears twice"),
        (_block(extra="agi_dnid: \xff\n").replace(b"\xc3\xbf", b"\xff"), "agi_dnid is not valid"),
        (_block("authorize", "tenant=\xff").replace(b"\xc3\xbf", b"\xff"), "agi_arg_1 is not"),
    ],
)
def test_bad_requests_name_the_problem(block: bytes, words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_env_block(block)
    assert words in caught.value.reason
    assert caught.value.framed  # Asterisk sent a whole block: it waits for our DENY


def test_latin1_caller_name_does_not_refuse_the_call() -> None:
    block = _block().replace(b"agi_calleridname: Desk", b"agi_calleridname: M\xfcller")
    request = parse_env_block(block)
    assert request.env["agi_calleridname"] == "M\ufffdller"


def test_garbage_is_refused_at_the_first_line_without_waiting() -> None:
    parser = EnvBlockParser()
    with pytest.raises(BadRequest) as caught:
        parser.feed(b"GET / HTTP/1.1\r\n")
    assert not caught.value.framed
    assert "env line 1 is not 'agi_key: value'" in caught.value.reason


def test_over_long_block_is_refused_before_its_end() -> None:
    parser = EnvBlockParser(max_bytes=1024)
    parser.feed(b"agi_network: yes\n")
    with pytest.raises(BadRequest) as caught:
        parser.feed(b"agi_arg_1: " + b"x" * 2000)  # no newline yet
    assert not caught.value.framed
    assert "longer than 1024 bytes" in caught.value.reason


def test_crlf_line_ends_are_tolerated() -> None:
    request = parse_env_block(_block("authorize?tenant=acme").replace(b"\n", b"\r\n"))
    assert request.args == {"tenant": "acme"}
    assert request.channel == "PJSIP/6001-00000001"


def test_block_without_its_empty_line_is_incomplete() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_env_block(b"agi_network: yes\nagi_network_script: authorize\n")
    assert not caught.value.framed

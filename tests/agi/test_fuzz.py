"""Arbitrary bytes never escape the parsers as anything but their own clear errors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.agi import AgiProtocolError, BadRequest, parse_env_block, parse_reply
from gateway.agi.protocol import EnvBlockParser

_ENVISH = st.lists(
    st.tuples(
        st.sampled_from(
            ["agi_network_script", "agi_uniqueid", "agi_arg_1", "agi_arg_2", "agi_x", "agi_", "x"]
        ),
        st.binary(max_size=30),
    ),
    max_size=8,
).map(lambda items: b"".join(k.encode() + b": " + v + b"\n" for k, v in items) + b"\n")


@settings(max_examples=400)
@given(st.one_of(st.binary(max_size=600), _ENVISH))
def test_env_block_parser_raises_only_bad_request(data: bytes) -> None:
    try:
        parse_env_block(data, max_bytes=512)
    except BadRequest as exc:
        assert exc.reason


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=80), max_size=12))
def test_incremental_env_parser_raises_only_bad_request(chunks: list[bytes]) -> None:
    parser = EnvBlockParser(max_bytes=400)
    try:
        for chunk in chunks:
            parser.feed(chunk)
    except BadRequest as exc:
        assert exc.reason


_REPLYISH = st.lists(
    st.one_of(
        st.sampled_from(
            [b"200 result=", b"520-", b"520 ", b"510 ", b"(", b")", b" endpos=", b"\n"]
        ),
        st.binary(max_size=10),
    ),
    max_size=10,
).map(b"".join)


@settings(max_examples=400)
@given(st.one_of(st.binary(max_size=300), _REPLYISH))
def test_reply_parser_raises_only_protocol_error(data: bytes) -> None:
    try:
        reply = parse_reply(data)
    except AgiProtocolError as exc:
        assert str(exc)
    else:
        try:
            _ = reply.result_int
        except AgiProtocolError:
            pass

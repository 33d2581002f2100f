"""The parsers' fast paths answer exactly as the general ones: same request, same error.

The env block parser takes all complete lines of a read with one regex and falls back to
line-by-line parsing for anything unusual; replies like `200 result=1` skip the general
parse. Whatever the bytes and however they are split, the outcome must not change.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.agi import AgiProtocolError, BadRequest, parse_reply
from gateway.agi.protocol import AgiRequest, EnvBlockParser, _parse_reply_text
from sim.fastagi import FastAgiCall


class _LineByLine(EnvBlockParser):
    """The parser with its fast path switched off: the reference."""

    def _take_lines(self) -> AgiRequest | bool | None:
        return None


def _outcome(parser: EnvBlockParser, chunks: list[bytes]) -> Any:
    try:
        for i, chunk in enumerate(chunks):
            request = parser.feed(chunk)
            if request is not None:  # what follows the block, whichever read it came in
                return ("request", request, parser.remainder + b"".join(chunks[i + 1 :]))
    except BadRequest as exc:
        return ("error", exc.reason, exc.framed, exc.call_id)
    return ("incomplete",)


_KEYS = ["agi_network_script", "agi_uniqueid", "agi_arg_1", "agi_arg_2", "agi_arg_10",
         "agi_arg_0", "agi_calleridname", "agi_channel", "agi_x", "agi_", "x", "agi_arg_1x"]
_VALUES = st.one_of(
    st.sampled_from(["t?a=1", "r/x?b=2&c", "1.2", "k=v", "a=b=c", "", " x", "\xe9"]),
    st.text(max_size=12),
).map(lambda v: v.encode())
_LINE = st.one_of(
    st.tuples(st.sampled_from(_KEYS), st.sampled_from([b": ", b":", b":  "]), _VALUES).map(
        lambda t: t[0].encode() + t[1] + t[2]
    ),
    st.binary(max_size=12),
)
_BLOCK = st.tuples(
    st.lists(_LINE, max_size=8),
    st.sampled_from([b"\n", b"\r\n"]),
    st.sampled_from([b"", b"HANGUP\n", b"200 result=1\n"]),
).map(lambda t: t[1].join(t[0]) + t[1] + t[1] + t[2])


@settings(max_examples=500)
@given(_BLOCK, st.lists(st.integers(min_value=0, max_value=200), max_size=4), st.integers(40, 400))
def test_env_parser_outcome_does_not_depend_on_the_fast_path_or_the_reads(
    block: bytes, cuts: list[int], max_bytes: int
) -> None:
    points = sorted({c for c in cuts if 0 < c < len(block)})
    chunks = [block[a:b] for a, b in zip([0, *points], [*points, len(block)], strict=True)]
    expected = _outcome(_LineByLine(max_bytes=max_bytes), [block])

    assert _outcome(EnvBlockParser(max_bytes=max_bytes), [block]) == expected
    assert _outcome(EnvBlockParser(max_bytes=max_bytes), chunks) == expected
    if expected[0] != "error" or expected[2]:  # unframed errors may come earlier by the byte
        assert _outcome(_LineByLine(max_bytes=max_bytes), chunks) == expected


def test_recorded_style_block_split_anywhere_gives_the_same_request() -> None:
    call = FastAgiCall("127.0.0.1", 1, "authorize?call=c1", args=("tenant=acme", "n=2"))
    block = call.env_block()
    whole = _outcome(EnvBlockParser(), [block])
    assert whole[0] == "request"
    for cut in range(1, len(block)):
        assert _outcome(EnvBlockParser(), [block[:cut], block[cut:]]) == whole
    assert _outcome(EnvBlockParser(), [block[i : i + 1] for i in range(len(block))]) == whole


_REPLY = st.one_of(
    st.tuples(
        st.sampled_from(["200 result=", "200 result= ", "200  result=", "511 result="]),
        st.sampled_from(["1", "0", "-1", "-2", "", "abc", "1 ", "\u00e9"]),
        st.sampled_from(["", " (x)", " ()", " (a b)", " (a(b))", " (x", " (x) endpos=5",
                         " endpos=5", " (x)y", " (\r)", " (x)\r"]),
        st.sampled_from(["\n", "", "\r\n", "\n\n", "\nmore\n"]),
    ).map(lambda t: "".join(t).encode()),
    st.binary(max_size=40),
)


@settings(max_examples=500)
@given(_REPLY)
def test_reply_fast_paths_answer_like_the_general_parse(data: bytes) -> None:
    try:
        expected: Any = _parse_reply_text(data.decode("utf-8", "replace"))
    except AgiProtocolError as exc:
        expected = ("error", str(exc))
    try:
        got: Any = parse_reply(data)
    except AgiProtocolError as exc:
        got = ("error", str(exc))
    assert got == expected

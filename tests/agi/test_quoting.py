"""Command arguments reach Asterisk's parse_args unchanged (sim/fastagi ports parse_args)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.agi.protocol import MAX_COMMAND_BYTES, bare_token, encode_command, quote_arg
from sim.fastagi import parse_agi_args


@pytest.mark.parametrize(
    ("line", "words"),
    [  # res_agi.c parse_args behaviour on the recorded commands and its corner cases
        ('EXEC NoOp "authorized by fastagi"', ["EXEC", "NoOp", "authorized by fastagi"]),
        ('STREAM FILE beep ""', ["STREAM", "FILE", "beep", ""]),
        ('GET FULL VARIABLE "${CALLERID(num)}-${EXTEN}"',
         ["GET", "FULL", "VARIABLE", "${CALLERID(num)}-${EXTEN}"]),
        ("SET VARIABLE A b\\ c", ["SET", "VARIABLE", "A", "b c"]),
        ('SET VARIABLE A x"y z"w', ["SET", "VARIABLE", "A", "xy zw"]),
        ("SET  VARIABLE\tA  ", ["SET", "VARIABLE", "A"]),
    ],
)
def test_parse_args_port(line: str, words: list[str]) -> None:
    assert parse_agi_args(line) == words


@given(st.text())
def test_quoted_value_round_trips_through_parse_args(value: str) -> None:
    words = parse_agi_args(f"SET VARIABLE NAME {quote_arg(value)}")
    expected = value.replace("\r", "").replace("\n", "").replace("\x00", "")
    assert words == ["SET", "VARIABLE", "NAME", expected]


def test_quote_drops_line_breaks_so_no_command_can_be_injected() -> None:
    quoted = quote_arg('x"\nHANGUP\n')
    assert "\n" not in quoted
    assert parse_agi_args(f"SET VARIABLE A {quoted}") == ["SET", "VARIABLE", "A", 'x"HANGUP']


@pytest.mark.parametrize("name", ["", "A B", 'A"', "A\\", "A\n", "A\t"])
def test_bare_token_refuses_what_would_split_or_quote(name: str) -> None:
    with pytest.raises(ValueError, match="must be one word"):
        bare_token(name, "variable name")


def test_bare_token_allows_dialplan_function_names() -> None:
    assert bare_token("CDR(userfield)", "variable name") == "CDR(userfield)"
    assert bare_token("__GW_CALL_ID", "variable name") == "__GW_CALL_ID"


def test_command_that_asterisk_would_cut_is_refused() -> None:
    assert encode_command("V" * MAX_COMMAND_BYTES).endswith(b"V\n")
    with pytest.raises(ValueError, match="would cut it"):
        encode_command("V" * (MAX_COMMAND_BYTES + 1))
    with pytest.raises(ValueError, match="line break"):
        encode_command("NOOP\nHANGUP")

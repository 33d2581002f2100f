"""The `h` extension's AstDB end record, as gateway.prepaid_end_records reads it: the
current "<end>,<answered ms>,<callee answer>", and the older "<end>,<answered ms>" and
"<end>" an upgraded Asterisk may still hold."""

from __future__ import annotations

import pytest

from gateway.prepaid_end_records import EndRecord, parse_end


@pytest.mark.parametrize(("value", "expected"), [
    ("1732370000.123,9520,1732369995.6", EndRecord(1732370000.123, 9520, 1732369995.6)),
    ("1732370000.123,,", EndRecord(1732370000.123, 0)),  # never answered, no U() record
    ("1732370000.123,9520,soon", EndRecord(1732370000.123, 9520)),  # unusable: ignored
    ("1732370000.123,9520,1732370009.0", EndRecord(1732370000.123, 9520)),  # after the end
    ("1732370000.123,4520", EndRecord(1732370000.123, 4520)),
    ("1732370000.123,", EndRecord(1732370000.123, 0)),  # Dial never answered
    ("1732370000.123,0", EndRecord(1732370000.123, 0)),
    ("1732370000.123", EndRecord(1732370000.123, None)),  # an older dialplan's record
    ("1732370000", EndRecord(1732370000.0, None)),  # ${EPOCH}
    ("1732370000.123 more words", EndRecord(1732370000.123, None)),
    ("1732370000.123,4.5", EndRecord(1732370000.123, None)),  # not whole ms: unknown
    ("1732370000.123,-5", EndRecord(1732370000.123, None)),
])
def test_records_old_and_new_are_read(value: str, expected: EndRecord) -> None:
    assert parse_end(value) == expected


@pytest.mark.parametrize("value", ["", "  ", "soon", "-1", "0,100", "nan,5", "inf"])
def test_unusable_ends_are_none(value: str) -> None:
    assert parse_end(value) is None


def test_answered_at_is_the_callee_answer_else_end_less_the_answered_time() -> None:
    exact = EndRecord(1000.5, 9500, 996.25)  # the caller's channel was up 5 s longer
    assert exact.answered_at == 996.25 and exact.exact
    assert EndRecord(1000.5, 4500).answered_at == pytest.approx(996.0)
    assert not EndRecord(1000.5, 4500).exact
    assert EndRecord(1000.5, 0).answered_at is None
    assert EndRecord(1000.5, None).answered_at is None

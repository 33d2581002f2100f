"""Which dial strings are emergency calls. Missing one is the dangerous mistake."""

from __future__ import annotations

import pytest

from limits import EmergencyNumbers

SITE_NUMBERS = EmergencyNumbers(("112", "911", "999", "000", "110", "119"))


@pytest.mark.parametrize(
    "dialled",
    [
        "112", "911", "999", "000", "110", "119",
        " 112 ", "112#", "1-1-2", "(911)",
        "+112", "+911",  # a plus typed before the short number
        "+44999", "+44 999", "0044999", "00 44 999", "011 44 999", "+44 (0) 999",
        "+1 911", "+1-911", "011 1 911", "+49112", "0049112", "+61000", "+86110",
        "9911", "9999", "9112", "0112", "0000", "9 00 44 999",  # outside-line prefix
        "*67911", "*31#112", "#31#112",  # caller-ID service codes
        "tel:+44999", "sip:112@pbx.example.com", "sip:911@10.0.0.1;user=phone",
        "tel:%2B44999",
    ],
)
def test_emergency_dial_strings_match(dialled: str) -> None:
    assert SITE_NUMBERS.matches(dialled)


@pytest.mark.parametrize(
    "dialled",
    [
        "", "1120", "11200", "9115", "5551120", "911911",
        "+19115551234", "+4420799999", "4420799999", "004420799999",
        "+44 20 7946 0999", "1000", "1999", "8112", "100",
        "sip:alice@pbx", "112abc", "*", "+",
    ],
)
def test_ordinary_numbers_do_not_match(dialled: str) -> None:
    assert not SITE_NUMBERS.matches(dialled)


def test_without_outside_line_prefixes_9999_is_an_ordinary_number() -> None:
    strict = EmergencyNumbers(("999", "112"), outside_line_prefixes=())
    assert not strict.matches("9999")
    assert not strict.matches("0112")
    assert strict.matches("+44999")
    assert strict.matches("999")


def test_only_configured_numbers_count() -> None:
    us = EmergencyNumbers(("911",))
    assert us.matches("911")
    assert not us.matches("112")


@pytest.mark.parametrize("bad", ["", "9", "11a", "123456789", "+112"])
def test_bad_configured_number_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="emergency number"):
        EmergencyNumbers((bad,))

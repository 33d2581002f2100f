"""`callgate hw list|show` text, as an operator reads it."""

from __future__ import annotations

from gateway.devices.cli_views import hw_list, hw_show
from hw_profiles import KINDS, ProfileSet


def test_list_is_a_table_of_every_profile(profiles: ProfileSet) -> None:
    result = hw_list(profiles)
    assert result.exit_code == 0
    lines = result.text.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "VENDOR", "MODEL", "CAPACITY"]
    assert len(lines) == 1 + len(profiles.profiles)
    row = next(line for line in lines if line.startswith("sangoma-a101-e1 "))
    assert row.split()[1] == "pri_span" and row.split()[-1] == "30"
    # columns line up: every row has its kind exactly under KIND
    col = lines[0].index("KIND")
    assert all(line[col - 1] == " " and line[col:].split()[0] in KINDS for line in lines[1:])


def test_show_prints_the_full_profile(profiles: ProfileSet) -> None:
    result = hw_show(profiles, "yealink-t46u")
    assert result.exit_code == 0
    assert "kind: desk_phone" in result.text
    assert "user_agent: ^Yealink SIP-T46U\\b" in result.text
    assert "simultaneous_calls: 5" in result.text
    assert "  Alert-Info: <http://127.0.0.1>;info=alert-autoanswer;delay=0" in result.text
    assert "  https://www.yealink.com/en/product-detail/ip-phone-t46u" in result.text
    span = hw_show(profiles, "sangoma-a101-t1")
    assert "channels: 23" in span.text and "span_type: T1" in span.text


def test_show_unknown_name_fails(profiles: ProfileSet) -> None:
    result = hw_show(profiles, "nokia-3310")
    assert result.exit_code == 1
    assert "no hardware profile named 'nokia-3310'" in result.text

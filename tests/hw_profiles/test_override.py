"""An operator profile named like a shipped one replaces it, and the replacement is logged."""

from __future__ import annotations

import textwrap
from pathlib import Path

from structlog.testing import capture_logs

from gateway.devices.cli_views import hw_validate
from hw_profiles import SHIPPED_DIR, DeskPhoneProfile, load_profiles

T46U_SITE = """
    # Our T46U firmware: the site allows 8 calls per phone.
    kind: desk_phone
    name: yealink-t46u
    vendor: Yealink
    model: SIP-T46U (site firmware)
    user_agent: '^Yealink SIP-T46U\\b'
    sip_accounts: 16
    simultaneous_calls: 8
    line_keys: 10
    auto_answer_headers:
      - 'Call-Info: <sip:pbx.example>;answer-after=0'
"""


def test_operator_profile_replaces_shipped_one(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "yealink-t46u.yaml").write_text(textwrap.dedent(T46U_SITE))
    with capture_logs() as logs:
        profiles = load_profiles([site])
    phone = profiles.get("yealink-t46u")
    assert isinstance(phone, DeskPhoneProfile)
    assert phone.simultaneous_calls == 8
    assert phone.origin == site / "yealink-t46u.yaml"
    assert profiles.match_user_agent("Yealink SIP-T46U 108.86.0.75") is phone
    assert [(o.name, o.replaced, o.by) for o in profiles.overrides] == [
        ("yealink-t46u", SHIPPED_DIR / "desk_phone" / "yealink-t46u.yaml",
         site / "yealink-t46u.yaml")]
    overridden = [e for e in logs if e["event"] == "hw_profile_overridden"]
    assert len(overridden) == 1 and overridden[0]["profile"] == "yealink-t46u"
    # Everything else is still the shipped data.
    assert profiles.get("yealink-t54w") is not None
    assert "override: yealink-t46u" in hw_validate(None, [site]).text


def test_operator_phone_is_tried_before_shipped_patterns(tmp_path: Path) -> None:
    # A site-specific profile for one firmware branch of a shipped model.
    (tmp_path / "yealink-t46u-v86.yaml").write_text(textwrap.dedent(
        T46U_SITE.replace("name: yealink-t46u", "name: yealink-t46u-v86")
                 .replace("'^Yealink SIP-T46U\\b'", "'^Yealink SIP-T46U 108\\.86\\.'")))
    profiles = load_profiles([tmp_path])
    assert profiles.match_user_agent("Yealink SIP-T46U 108.86.0.75").name == "yealink-t46u-v86"
    assert profiles.match_user_agent("Yealink SIP-T46U 108.85.0.20").name == "yealink-t46u"


def test_later_operator_dir_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for directory, calls in ((first, 6), (second, 7)):
        directory.mkdir()
        (directory / "yealink-t46u.yaml").write_text(
            textwrap.dedent(T46U_SITE).replace("simultaneous_calls: 8",
                                               f"simultaneous_calls: {calls}"))
    profiles = load_profiles([first, second])
    assert profiles.get("yealink-t46u").capacity == 7  # type: ignore[union-attr]
    assert len(profiles.overrides) == 2


def test_operator_can_replace_the_default_profile(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text(textwrap.dedent("""
        kind: desk_phone
        name: default
        vendor: site
        model: any phone here
        sip_accounts: 1
        simultaneous_calls: 1
        line_keys: 0
    """))
    profiles = load_profiles([tmp_path])
    assert profiles.default_desk_phone.simultaneous_calls == 1
    assert profiles.match_user_agent("sipp") is profiles.default_desk_phone

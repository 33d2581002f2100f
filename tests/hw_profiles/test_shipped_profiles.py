"""The profiles we ship load cleanly, say where their figures come from, and carry the
capacities the limits package relies on."""

from __future__ import annotations

import re

import pytest

from hw_profiles import (
    KINDS,
    SHIPPED_DIR,
    DeskPhoneProfile,
    PriSpanProfile,
    ProfileSet,
    validate_dir,
)
from hw_profiles.loader import profile_files

GENERIC = {"default", "generic-sip-trunk"}


def test_every_shipped_profile_validates() -> None:
    assert validate_dir(SHIPPED_DIR) == []


def test_one_file_per_device_under_its_kind_folder(profiles: ProfileSet) -> None:
    files = profile_files(SHIPPED_DIR)
    assert len(files) == len(profiles.profiles)
    for path in files:
        profile = profiles.get(path.stem)
        assert profile is not None, path
        assert path.parent.name == profile.kind, path
        assert path.parent.parent == SHIPPED_DIR


def test_at_least_fifteen_real_devices_of_every_kind(profiles: ProfileSet) -> None:
    real = [n for n in profiles.names() if n not in GENERIC]
    assert len(real) >= 15
    assert {p.kind for p in profiles.profiles.values()} == set(KINDS)


def test_each_real_device_cites_its_source_in_a_comment_and_in_sources() -> None:
    for path in profile_files(SHIPPED_DIR):
        if path.stem in GENERIC:
            continue
        comments = [line for line in path.read_text().splitlines() if line.startswith("#")]
        assert any(re.search(r"https?://", line) for line in comments), path
        assert "sources:" in path.read_text(), path


@pytest.mark.parametrize(("name", "capacity"), [
    ("sangoma-a101-e1", 30),
    ("sangoma-a101-t1", 23),
    ("sangoma-a102-e1", 60),
    ("grandstream-gxw4104", 4),
    ("grandstream-gxw4108", 8),
    ("grandstream-ht814", 4),
    ("dbl-goip-4", 4),
    ("grandstream-gxp2170", 12),
])
def test_capacities_of_gateways_and_spans(profiles: ProfileSet, name: str,
                                          capacity: int) -> None:
    profile = profiles.get(name)
    assert profile is not None
    assert profile.capacity == capacity


def test_e1_and_t1_spans(profiles: ProfileSet) -> None:
    e1, t1 = profiles.get("sangoma-a101-e1"), profiles.get("sangoma-a101-t1")
    assert isinstance(e1, PriSpanProfile) and e1.span_type == "E1"
    assert isinstance(t1, PriSpanProfile) and t1.span_type == "T1"


def test_every_desk_phone_has_an_auto_answer_header(profiles: ProfileSet) -> None:
    for profile in profiles.of_kind("desk_phone"):
        assert isinstance(profile, DeskPhoneProfile)
        assert profile.auto_answer_headers, profile.name
        assert profile.simultaneous_calls >= 1


def test_default_profile_matches_nothing_by_itself(profiles: ProfileSet) -> None:
    assert profiles.default_desk_phone.name == "default"
    assert profiles.default_desk_phone.user_agent is None
    assert profiles.default_desk_phone not in profiles.match_order

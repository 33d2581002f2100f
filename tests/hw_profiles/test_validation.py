"""A broken operator directory yields exactly one clear error per problem, each naming the
file, the key and the reason, and every problem is reported at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.devices.cli_views import hw_validate
from hw_profiles import ProfileError, ProfileLoadError, load_profiles, validate_dir

GOOD_PHONE = """
    kind: desk_phone
    name: {name}
    vendor: Acme
    model: P1
    user_agent: '^Acme P1\\b'
    sip_accounts: 2
    simultaneous_calls: 2
    line_keys: 4
    auto_answer_headers:
      - 'Call-Info: <sip:127.0.0.1>;answer-after=0'
"""


def write(directory: Path, rel: str, body: str) -> Path:
    path = directory / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def by_file_and_key(errors: list[ProfileError]) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for e in errors:
        key = (e.path.name, e.key)
        assert key not in out, f"two errors for {key}: {out[key]!r} and {e.reason!r}"
        out[key] = e.reason
    return out


@pytest.fixture
def broken_dir(tmp_path: Path) -> Path:
    write(tmp_path, "fxo_gateway/wrong-type.yaml", """
        kind: fxo_gateway
        name: wrong-type
        vendor: Acme
        model: FXO-4
        ports: four
    """)
    write(tmp_path, "desk_phone/missing-keys.yaml", """
        kind: desk_phone
        name: missing-keys
        vendor: Acme
        user_agent: '^Acme'
        simultaneous_calls: 2
        line_keys: 2
    """)
    write(tmp_path, "misc/unknown-kind.yaml", """
        kind: fax_machine
        name: unknown-kind
        vendor: Acme
        model: F1
    """)
    write(tmp_path, "desk_phone/bad-regex.yaml", GOOD_PHONE.format(name="bad-regex").replace(
        "'^Acme P1\\b'", "'Acme (P1'"))
    write(tmp_path, "gsm_gateway/negative.yaml", """
        kind: gsm_gateway
        name: negative
        vendor: Acme
        model: G-4
        channels: -2
    """)
    write(tmp_path, "desk_phone/dup.yaml", GOOD_PHONE.format(name="dup"))
    write(tmp_path, "more/dup.yaml", GOOD_PHONE.format(name="dup"))
    write(tmp_path, "desk_phone/fine.yaml", GOOD_PHONE.format(name="fine"))
    return tmp_path


def test_one_error_per_problem_naming_file_key_and_reason(broken_dir: Path) -> None:
    errors = validate_dir(broken_dir)
    found = by_file_and_key(errors)
    assert set(found) == {
        ("wrong-type.yaml", "ports"),
        ("missing-keys.yaml", "model"),
        ("missing-keys.yaml", "sip_accounts"),
        ("unknown-kind.yaml", "kind"),
        ("bad-regex.yaml", "user_agent"),
        ("negative.yaml", "channels"),
        ("dup.yaml", "name"),
    }
    assert found[("wrong-type.yaml", "ports")] == "must be an integer, got a string"
    assert found[("missing-keys.yaml", "model")] == "missing required key"
    assert "unknown kind 'fax_machine'" in found[("unknown-kind.yaml", "kind")]
    assert found[("bad-regex.yaml", "user_agent")].startswith("invalid regular expression")
    assert found[("negative.yaml", "channels")] == "must be >= 1, got -2"
    assert "duplicate name 'dup'" in found[("dup.yaml", "name")]
    dup = next(e for e in errors if e.key == "name")
    assert dup.path == broken_dir / "more" / "dup.yaml"  # the second one in path order


def test_error_text_names_path_key_and_reason(broken_dir: Path) -> None:
    error = next(e for e in validate_dir(broken_dir) if e.key == "ports")
    assert str(error) == f"{broken_dir / 'fxo_gateway' / 'wrong-type.yaml'}: ports: " \
                         "must be an integer, got a string"


@pytest.mark.parametrize(("body", "key", "reason"), [
    ("kind: desk_phone\nname: x\nvendor: A\nmodel: B\nuser_agent: a\nsip_accounts: 1\n"
     "simultaneous_calls: 1\nline_keys: 1\nline_key: 2\n", "line_key",
     "unknown key (did you mean 'line_keys'?)"),
    ("kind: fxo_gateway\nname: x\nvendor: A\nmodel: B\nports: true\n", "ports",
     "must be an integer, got a boolean"),
    ("kind: fxo_gateway\nname: y\nvendor: A\nmodel: B\nports: 4\n", "name",
     "'y' does not match the file name 'x.yaml'"),
    ("kind: fxo_gateway\nname: x\nvendor: A\nmodel: B\nports: 4\nports: 8\n", "",
     "invalid YAML: line 6: key 'ports' is given twice"),
    ("kind: fxo_gateway\nname: x\n  vendor: [\n", "", "invalid YAML: line 3"),
    ("- just\n- a list\n", "", "must be a YAML mapping, got a list"),
    ("kind: pri_span\nname: x\nvendor: A\nmodel: B\nspan_type: E1\nchannels: 40\n",
     "channels", "1 E1 span(s) carry at most 31, got 40"),
    ("kind: pri_span\nname: x\nvendor: A\nmodel: B\nspan_type: J1\n", "span_type",
     "must be one of T1, E1, got 'J1'"),
    ("kind: sip_trunk\nname: x\nvendor: A\nmodel: B\nmax_channels: 10\ncalls_per_second: 0\n",
     "calls_per_second", "must be > 0, got 0"),
    ("kind: desk_phone\nname: x\nvendor: A\nmodel: B\nuser_agent: a\nsip_accounts: 1\n"
     "simultaneous_calls: 1\nline_keys: 0\nauto_answer_headers: ['no colon here']\n",
     "auto_answer_headers[0]", "must look like 'Header-Name: value'"),
    ("kind: gsm_gateway\nname: x\nvendor: A\nmodel: B\nchannels: 8\nsim_slots: 4\n",
     "sim_slots", "must be >= channels (8), got 4"),
])
def test_single_problem_files(tmp_path: Path, body: str, key: str, reason: str) -> None:
    (tmp_path / "x.yaml").write_text(body)
    errors = validate_dir(tmp_path)
    assert len(errors) == 1, errors
    assert errors[0].key == key
    assert errors[0].reason.startswith(reason), errors[0].reason


def test_missing_directory_is_one_error(tmp_path: Path) -> None:
    errors = validate_dir(tmp_path / "nope")
    assert [e.reason for e in errors] == ["profile directory not found"]


def test_daemon_load_refuses_a_broken_operator_dir_listing_every_problem(
        broken_dir: Path) -> None:
    with pytest.raises(ProfileLoadError) as caught:
        load_profiles([broken_dir])
    assert len(caught.value.errors) == 7
    assert "wrong-type.yaml: ports: must be an integer" in str(caught.value)


def test_pri_channels_default_from_span_type(tmp_path: Path) -> None:
    write(tmp_path, "t1x2.yaml", """
        kind: pri_span
        name: t1x2
        vendor: Acme
        model: Dual T1
        span_type: T1
        spans: 2
    """)
    profile = load_profiles([tmp_path]).get("t1x2")
    assert profile is not None and profile.capacity == 46


def test_cli_validate_exit_codes(broken_dir: Path,
                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    bad = hw_validate(broken_dir)
    assert bad.exit_code == 1
    assert "7 problems found" in bad.text
    assert "negative.yaml: channels: must be >= 1, got -2" in bad.text

    good_dir = tmp_path_factory.mktemp("good")
    write(good_dir, "fine.yaml", GOOD_PHONE.format(name="fine"))
    assert hw_validate(good_dir).exit_code == 0
    everything = hw_validate(None, [good_dir])
    assert everything.exit_code == 0
    assert "profiles valid" in everything.text
    assert hw_validate(None, [broken_dir]).exit_code == 1

"""The profile YAML schema: turns one parsed document into a profile, or into its errors.

Every problem is reported, each once, naming the key and the reason, because an operator
fixing a profile by hand should not have to run the validator once per typo.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

from hw_profiles.models import (
    DEFAULT_DESK_PHONE,
    KINDS,
    AnyProfile,
    DeskPhoneProfile,
    FxoGatewayProfile,
    FxsGatewayProfile,
    GsmGatewayProfile,
    PriSpanProfile,
    ProfileError,
    ProfileKind,
    SipTrunkProfile,
)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# RFC 3261 `token`, the characters allowed in a header name.
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

# B-channels of one span: ISDN PRI is 23B+D on a T1 and 30B+D on an E1 (ITU-T I.431);
# a T1 without a D-channel (robbed-bit CAS) carries 24, an E1 at most 31 timeslots.
PRI_DEFAULT_CHANNELS = {"T1": 23, "E1": 30}
PRI_MAX_CHANNELS = {"T1": 24, "E1": 31}

COMMON_KEYS = ("kind", "name", "vendor", "model", "sources", "notes")
KIND_KEYS: dict[ProfileKind, tuple[str, ...]] = {
    "desk_phone": (
        "user_agent", "sip_accounts", "simultaneous_calls", "line_keys", "auto_answer_headers",
    ),
    "fxo_gateway": ("ports",),
    "fxs_gateway": ("ports",),
    "gsm_gateway": ("channels", "sim_slots"),
    "pri_span": ("span_type", "spans", "channels"),
    "sip_trunk": ("max_channels", "calls_per_second"),
}

_MISSING: Any = object()


class _Reader:
    """Reads keys from one document, recording a ProfileError per bad or missing key."""

    def __init__(self, data: Mapping[str, Any], path: Path) -> None:
        self.data = data
        self.path = path
        self.errors: list[ProfileError] = []

    def error(self, key: str, reason: str) -> None:
        self.errors.append(ProfileError(self.path, key, reason))

    def raw(self, key: str, required: bool) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                self.error(key, "missing required key")
            return _MISSING
        return self.data[key]

    def text(self, key: str, required: bool = True, default: str = "") -> str:
        value = self.raw(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            self.error(key, f"must be a string, got {_type_name(value)}")
            return default
        if not value.strip():
            self.error(key, "must not be empty")
            return default
        if CONTROL_RE.search(value):
            self.error(key, "must not contain control characters or line breaks")
            return default
        return value

    def integer(self, key: str, minimum: int, required: bool = True,
                default: int | None = None) -> int | None:
        value = self.raw(key, required)
        if value is _MISSING:
            return default
        # bool is an int in Python; `ports: yes` is a typo, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"must be an integer, got {_type_name(value)}")
            return None
        if value < minimum:
            self.error(key, f"must be >= {minimum}, got {value}")
            return None
        return value

    def number(self, key: str, required: bool = True) -> float | None:
        value = self.raw(key, required)
        if value is _MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(key, f"must be a number, got {_type_name(value)}")
            return None
        if not value > 0:
            self.error(key, f"must be > 0, got {value}")
            return None
        return float(value)

    def string_list(self, key: str, check: Callable[[str], str | None]) -> list[str]:
        value = self.raw(key, False)
        if value is _MISSING:
            return []
        if not isinstance(value, list):
            self.error(key, f"must be a list of strings, got {_type_name(value)}")
            return []
        out: list[str] = []
        for i, item in enumerate(value):
            where = f"{key}[{i}]"
            if not isinstance(item, str):
                self.error(where, f"must be a string, got {_type_name(item)}")
                continue
            problem = check(item)
            if problem:
                self.error(where, problem)
                continue
            out.append(item)
        return out

    def choice(self, key: str, allowed: tuple[str, ...]) -> str | None:
        value = self.raw(key, True)
        if value is _MISSING:
            return None
        if not isinstance(value, str) or value not in allowed:
            self.error(key, f"must be one of {', '.join(allowed)}, got {value!r}")
            return None
        return value


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a mapping", type(None): "an empty document"}
    return names.get(type(value), type(value).__name__)


def _check_url(value: str) -> str | None:
    if not re.match(r"^https?://\S+$", value):
        return "must be an http(s) URL"
    return None


def parse_header(value: str) -> tuple[str, str] | str:
    """`"Alert-Info: <...>;info=alert-autoanswer"` -> (name, value), or the reason it is bad."""
    if CONTROL_RE.search(value):
        return "must not contain control characters or line breaks"
    name, sep, rest = value.partition(":")
    name, rest = name.strip(), rest.strip()
    if not sep or not HEADER_NAME_RE.match(name):
        return "must look like 'Header-Name: value'"
    if not rest:
        return "header value must not be empty"
    return name, rest


def _check_header(value: str) -> str | None:
    parsed = parse_header(value)
    return parsed if isinstance(parsed, str) else None


def build_profile(data: object, path: Path) -> tuple[AnyProfile | None, list[ProfileError]]:
    """Validate one parsed YAML document; return the profile (None if any error) and errors."""
    if not isinstance(data, dict):
        return None, [ProfileError(path, "", f"must be a YAML mapping, got {_type_name(data)}")]
    doc = cast(dict[str, Any], data)
    r = _Reader(doc, path)

    kind_value = r.raw("kind", True)
    kind: ProfileKind | None = None
    if kind_value is not _MISSING:
        if kind_value in KINDS:
            kind = cast(ProfileKind, kind_value)
        else:
            r.error("kind", f"unknown kind {kind_value!r} (expected one of {', '.join(KINDS)})")

    name = r.text("name")
    if name and not NAME_RE.match(name):
        r.error("name", "must be lowercase letters, digits, '.', '_' or '-' (at most 64)")
    elif name and name != path.stem:
        r.error("name", f"{name!r} does not match the file name {path.name!r}")
    vendor = r.text("vendor")
    model = r.text("model")
    sources = tuple(r.string_list("sources", _check_url))
    notes = r.text("notes", required=False)

    for key in doc:
        allowed = COMMON_KEYS + (KIND_KEYS[kind] if kind else ())
        if not isinstance(key, str):
            r.error(str(key), "keys must be strings")
        elif key not in allowed and (kind is not None or key not in _all_kind_keys()):
            hint = difflib.get_close_matches(key, allowed, n=1)
            r.error(key, "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else ""))

    if kind is None:
        return None, r.errors
    common = {"name": name, "vendor": vendor, "model": model, "origin": path,
              "sources": sources, "notes": notes}
    profile = _BUILDERS[kind](r, common)
    if r.errors:
        return None, r.errors
    return profile, []


def _all_kind_keys() -> set[str]:
    return {k for keys in KIND_KEYS.values() for k in keys}


def _desk_phone(r: _Reader, common: dict[str, Any]) -> AnyProfile | None:
    pattern: re.Pattern[str] | None = None
    is_default = common["name"] == DEFAULT_DESK_PHONE
    source = r.text("user_agent", required=not is_default, default="")
    if source:
        if is_default:
            r.error("user_agent", "the default profile matches every unknown phone; remove it")
        else:
            try:
                pattern = re.compile(source, re.IGNORECASE)
            except re.error as exc:
                r.error("user_agent", f"invalid regular expression: {exc}")
    accounts = r.integer("sip_accounts", 1)
    calls = r.integer("simultaneous_calls", 1)
    line_keys = r.integer("line_keys", 0)
    headers = []
    for item in r.string_list("auto_answer_headers", _check_header):
        parsed = parse_header(item)
        if not isinstance(parsed, str):
            headers.append(parsed)
    if r.errors or accounts is None or calls is None or line_keys is None:
        return None
    return DeskPhoneProfile(
        user_agent=pattern, sip_accounts=accounts, simultaneous_calls=calls,
        line_keys=line_keys, auto_answer_headers=tuple(headers), **common,
    )


def _analog(cls: type[FxoGatewayProfile] | type[FxsGatewayProfile]) -> _Builder:
    def build(r: _Reader, common: dict[str, Any]) -> AnyProfile | None:
        ports = r.integer("ports", 1)
        if ports is None:
            return None
        return cls(ports=ports, **common)
    return build


def _gsm(r: _Reader, common: dict[str, Any]) -> AnyProfile | None:
    channels = r.integer("channels", 1)
    sim_slots = r.integer("sim_slots", 1, required=False, default=channels)
    if channels is not None and sim_slots is not None and sim_slots < channels:
        r.error("sim_slots", f"must be >= channels ({channels}), got {sim_slots}")
        return None
    if channels is None or sim_slots is None:
        return None
    return GsmGatewayProfile(channels=channels, sim_slots=sim_slots, **common)


def _pri(r: _Reader, common: dict[str, Any]) -> AnyProfile | None:
    span_type = r.choice("span_type", ("T1", "E1"))
    spans = r.integer("spans", 1, required=False, default=1)
    channels = r.integer("channels", 1, required=False)
    if span_type is None or spans is None:
        return None
    top = spans * PRI_MAX_CHANNELS[span_type]
    if channels is not None and channels > top:
        r.error("channels", f"{spans} {span_type} span(s) carry at most {top}, got {channels}")
        return None
    if "channels" in r.data and channels is None:
        return None
    typed = cast(Literal["T1", "E1"], span_type)
    return PriSpanProfile(
        span_type=typed, spans=spans,
        channels=channels if channels is not None else spans * PRI_DEFAULT_CHANNELS[span_type],
        **common,
    )


def _sip_trunk(r: _Reader, common: dict[str, Any]) -> AnyProfile | None:
    channels = r.integer("max_channels", 1)
    cps = r.number("calls_per_second")
    if channels is None or cps is None:
        return None
    return SipTrunkProfile(max_channels=channels, calls_per_second=cps, **common)


_Builder = Callable[[_Reader, dict[str, Any]], AnyProfile | None]
_BUILDERS: dict[ProfileKind, _Builder] = {
    "desk_phone": _desk_phone,
    "fxo_gateway": _analog(FxoGatewayProfile),
    "fxs_gateway": _analog(FxsGatewayProfile),
    "gsm_gateway": _gsm,
    "pri_span": _pri,
    "sip_trunk": _sip_trunk,
}

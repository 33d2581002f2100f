"""Reading profile directories: the shipped ones, then the operator's, later names winning.

Operators describe their own hardware in a directory named in the config; a profile there
with a shipped profile's name replaces it (logged as `hw_profile_overridden`), so a site can
correct a figure without forking the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import structlog
import yaml

from hw_profiles.models import (
    DEFAULT_DESK_PHONE,
    AnyProfile,
    DeskPhoneProfile,
    ProfileError,
    ProfileLoadError,
    ProfileOverride,
    ProfileSet,
)
from hw_profiles.schema import build_profile

SHIPPED_DIR = Path(__file__).resolve().parent / "profiles"
SUFFIXES = (".yaml", ".yml")

_log = structlog.get_logger(__name__)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice; PyYAML would silently keep the last."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode,
                       deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark,
                f"key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def profile_files(directory: Path) -> list[Path]:
    """Every *.yaml / *.yml under `directory`, in a stable order, hidden entries skipped."""
    found = [
        p for p in directory.rglob("*")
        if p.suffix in SUFFIXES and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    ]
    return sorted(found, key=lambda p: p.relative_to(directory).as_posix())


def read_profile(path: Path) -> tuple[AnyProfile | None, list[ProfileError]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [ProfileError(path, "", f"cannot read file: {exc}")]
    try:
        # _StrictLoader is a SafeLoader subclass: no arbitrary object construction.
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [ProfileError(path, "", f"invalid YAML: {where}{problem}")]
    return build_profile(data, path)


def _read_dir(directory: Path) -> tuple[list[AnyProfile], list[ProfileError]]:
    """Profiles of one directory; a name defined twice in it is an error, not an override."""
    if not directory.is_dir():
        return [], [ProfileError(directory, "", "profile directory not found")]
    profiles: list[AnyProfile] = []
    errors: list[ProfileError] = []
    first_seen: dict[str, Path] = {}
    for path in profile_files(directory):
        profile, problems = read_profile(path)
        errors.extend(problems)
        if profile is None:
            continue
        if profile.name in first_seen:
            errors.append(ProfileError(
                path, "name",
                f"duplicate name {profile.name!r} (already defined in {first_seen[profile.name]})"))
            continue
        first_seen[profile.name] = path
        profiles.append(profile)
    return profiles, errors


def validate_dir(path: Path) -> list[ProfileError]:
    """All problems in one directory of profiles, for `callgate hw validate DIR`."""
    return _read_dir(path)[1]


def load_profiles(extra_dirs: Sequence[Path] = (), *,
                  shipped_dir: Path = SHIPPED_DIR) -> ProfileSet:
    """Shipped profiles, then each operator directory in order, a later name replacing an
    earlier one. Raises ProfileLoadError listing every problem of every directory."""
    log = _log
    by_name: dict[str, AnyProfile] = {}
    overrides: list[ProfileOverride] = []
    errors: list[ProfileError] = []
    operator_phones: list[list[DeskPhoneProfile]] = []
    for index, directory in enumerate([shipped_dir, *extra_dirs]):
        profiles, problems = _read_dir(directory)
        errors.extend(problems)
        if index:
            operator_phones.append(
                sorted((p for p in profiles if isinstance(p, DeskPhoneProfile)),
                       key=lambda p: p.name))
        for profile in profiles:
            previous = by_name.get(profile.name)
            if previous is not None:
                overrides.append(ProfileOverride(profile.name, previous.origin, profile.origin))
                log.info("hw_profile_overridden", profile=profile.name,
                         replaced=str(previous.origin), by=str(profile.origin),
                         old_kind=previous.kind, new_kind=profile.kind)
            by_name[profile.name] = profile

    default = by_name.get(DEFAULT_DESK_PHONE)
    if not isinstance(default, DeskPhoneProfile):
        where = default.origin if default is not None else shipped_dir
        errors.append(ProfileError(
            where, "name", f"a desk_phone profile named {DEFAULT_DESK_PHONE!r} is required "
            "(it answers for phones no other profile matches)"))
    if errors:
        for error in errors:
            log.error("hw_profile_invalid", file=str(error.path), key=error.key,
                      reason=error.reason)
        raise ProfileLoadError(errors)
    assert isinstance(default, DeskPhoneProfile)

    # Operator phones first (last directory first), then shipped ones; an overridden
    # profile is tried only in its final form.
    order: list[DeskPhoneProfile] = []
    for group in reversed(operator_phones):
        order.extend(group)
    order.extend(sorted((p for p in by_name.values()
                         if isinstance(p, DeskPhoneProfile) and p not in order),
                        key=lambda p: p.name))
    final = [p for p in order if by_name.get(p.name) is p and p.user_agent is not None]
    return ProfileSet(
        profiles=MappingProxyType(dict(sorted(by_name.items()))),
        match_order=tuple(final),
        default_desk_phone=default,
        overrides=tuple(overrides),
    )

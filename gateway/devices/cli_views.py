"""Text for `callgate hw list|show|validate|devices`; argparse wiring lives in gateway.cli.

Each view returns the text to print and the exit code, so the CLI stays a thin shell and
the views are tested without a subprocess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from gateway.devices.registry import DeviceSnapshot
from hw_profiles import (
    SHIPPED_DIR,
    AnyProfile,
    DeskPhoneProfile,
    ProfileLoadError,
    ProfileSet,
    load_profiles,
    validate_dir,
)


@dataclass(frozen=True)
class CliResult:
    text: str
    exit_code: int


def hw_list(profiles: ProfileSet) -> CliResult:
    """One line per profile: name, kind, vendor, model, capacity (concurrent calls)."""
    header = ("NAME", "KIND", "VENDOR", "MODEL", "CAPACITY")
    rows = [header] + [
        (p.name, p.kind, p.vendor, p.model, str(p.capacity))
        for p in (profiles.profiles[n] for n in profiles.names())
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    return CliResult("\n".join(lines) + "\n", 0)


def hw_devices(listings: Sequence[tuple[str, Sequence[DeviceSnapshot]]]) -> CliResult:
    """The desk phones each Asterisk knows, one line per phone: endpoint, contact,
    User-Agent, matched profile, registered or not, calls in progress / call appearances.
    `listings` holds (asterisk name, its devices); the ASTERISK column shows only when
    there are several."""
    several = len(listings) > 1
    header = (*(("ASTERISK",) if several else ()), "ENDPOINT", "REGISTERED", "CONTACT",
              "USER-AGENT", "PROFILE", "CALLS")
    rows: list[tuple[str, ...]] = [header]
    for asterisk, devices in listings:
        for d in sorted(devices, key=lambda d: d.endpoint):
            contact = next((c.uri for c in d.contacts), "-")
            profile = d.profile.name if d.profile_matched else f"{d.profile.name} (unmatched)"
            rows.append((*((asterisk,) if several else ()), d.endpoint,
                         "yes" if d.registered else "no", contact, d.user_agent or "-",
                         profile, f"{d.calls_in_progress}/{d.call_limit}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    count = len(rows) - 1
    registered = sum(d.registered for _, devs in listings for d in devs)
    lines.append(f"{count} device{'s' if count != 1 else ''}, {registered} registered")
    return CliResult("\n".join(lines) + "\n", 0)


def hw_show(profiles: ProfileSet, name: str) -> CliResult:
    profile = profiles.get(name)
    if profile is None:
        return CliResult(f"no hardware profile named {name!r} (see `callgate hw list`)\n", 1)
    return CliResult(render_profile(profile), 0)


def render_profile(profile: AnyProfile) -> str:
    lines = [f"kind: {profile.kind}", f"capacity: {profile.capacity}"]
    for f in fields(profile):
        value = getattr(profile, f.name)
        if f.name == "user_agent" and isinstance(profile, DeskPhoneProfile):
            value = value.pattern if value is not None else "(matches unknown phones)"
        if f.name == "auto_answer_headers":
            lines.append("auto_answer_headers:")
            lines.extend(f"  {h}: {v}" for h, v in value)
            continue
        if f.name == "sources":
            lines.append("sources:")
            lines.extend(f"  {url}" for url in value)
            continue
        if value == "" and f.name == "notes":
            continue
        lines.append(f"{f.name}: {value}")
    return "\n".join(lines) + "\n"


def hw_validate(directory: Path | None = None, extra_dirs: Sequence[Path] = ()) -> CliResult:
    """With DIR: check that directory alone. Without: the shipped profiles plus the
    configured operator directories, as the daemon would load them."""
    if directory is not None:
        errors = validate_dir(directory)
        if errors:
            return _errors_text(errors)
        return CliResult(f"{directory}: all profiles valid\n", 0)
    try:
        profiles = load_profiles(extra_dirs)
    except ProfileLoadError as exc:
        return _errors_text(exc.errors)
    dirs = ", ".join(str(d) for d in [SHIPPED_DIR, *extra_dirs])
    lines = [f"{len(profiles.profiles)} profiles valid ({dirs})"]
    lines += [f"override: {o.name}: {o.replaced} replaced by {o.by}" for o in profiles.overrides]
    return CliResult("\n".join(lines) + "\n", 0)


def _errors_text(errors: Sequence[object]) -> CliResult:
    count = len(errors)
    text = "\n".join(str(e) for e in errors)
    return CliResult(f"{text}\n{count} problem{'s' if count != 1 else ''} found\n", 1)

"""Rate plans from CSV, the format carriers and call-shop software export.

Header row required, names case-insensitive, in any order:

| column                | required | meaning                                                   |
|-----------------------|----------|-----------------------------------------------------------|
| `prefix`              | yes      | digits, E.164 without '+' (longest match wins)            |
| `destination`         | no       | name shown in CDRs and announcements                      |
| `rate`                | yes      | per minute, major units ('0.15'), default band            |
| `rate_<band>`         | no       | per minute in that band (the plan settings declare bands) |
| `connection_fee`      | no       | per answered, charged call, major units (default 0)       |
| `increments`          | no       | `initial/subsequent` seconds: 60/60 (default), 30/6, 1/1  |
| `min_duration`        | no       | seconds billed at least (default 0)                       |
| `grace`               | no       | calls shorter than this many seconds are free (default 0) |

A bad row is reported with its line number and reason and skipped; the good rows are kept.
A bad header fails the whole file (reported as line 1).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from prepaid.errors import BadInput
from prepaid.money import parse_amount, parse_rate
from prepaid.rating import PlanSettings, RateEntry, check_prefix, parse_increments

log = structlog.get_logger(__name__)

_ALIASES = {
    "prefix": "prefix", "code": "prefix", "dial_code": "prefix",
    "destination": "destination", "name": "destination", "description": "destination",
    "rate": "rate", "rate_per_minute": "rate", "price": "rate",
    "connection_fee": "connection_fee", "fee": "connection_fee", "setup_fee": "connection_fee",
    "increments": "increments", "increment": "increments", "billing": "increments",
    "min_duration": "min_duration", "minimum": "min_duration", "min": "min_duration",
    "grace": "grace", "grace_period": "grace", "free_seconds": "grace",
}
_MAX_ERRORS = 10_000  # a wholly wrong file still reports, but does not balloon memory


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str


@dataclass
class CsvImport:
    entries: list[RateEntry] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def _columns(header: list[str], settings: PlanSettings) -> dict[str, int]:
    cols: dict[str, int] = {}
    bands = settings.bands.names
    for i, raw in enumerate(header):
        name = raw.strip().lower().lstrip("\ufeff")
        key = _ALIASES.get(name)
        if key is None and name.startswith("rate_"):
            band = name[5:]
            if band not in bands:
                raise BadInput(
                    f"column {raw!r}: band {band!r} is not one of the plan's bands "
                    f"({', '.join(sorted(bands))})"
                )
            key = name
        if key is None:
            raise BadInput(f"unknown column {raw!r}")
        if key in cols:
            raise BadInput(f"column {raw!r} given twice")
        cols[key] = i
    for need in ("prefix", "rate"):
        if need not in cols:
            raise BadInput(f"missing column {need!r}")
    return cols


def _int(text: str, what: str) -> int:
    t = text.strip()
    if not t:
        return 0
    if not t.isdigit():
        raise BadInput(f"{what} {text!r} must be a whole number of seconds")
    return int(t)


def _row(row: list[str], cols: dict[str, int], currency: str) -> RateEntry:
    def cell(name: str) -> str:
        i = cols.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    prefix = check_prefix(cell("prefix"))
    rate_text = cell("rate")
    if not rate_text:
        raise BadInput("rate is empty")
    rate = parse_rate(rate_text, currency)
    band_rates = tuple(
        (name[5:], parse_rate(cell(name), currency, name))
        for name in cols
        if name.startswith("rate_") and cell(name)
    )
    fee_text = cell("connection_fee")
    fee = parse_amount(fee_text, currency, "connection_fee") if fee_text else 0
    incr = cell("increments")
    initial, subsequent = parse_increments(incr) if incr else (60, 60)
    return RateEntry(
        prefix=prefix,
        destination=cell("destination")[:80],
        rate=rate,
        band_rates=band_rates,
        connection_fee=fee,
        initial=initial,
        subsequent=subsequent,
        min_duration=_int(cell("min_duration"), "min_duration"),
        grace=_int(cell("grace"), "grace"),
    )


def parse_rows(lines: Iterable[str], settings: PlanSettings) -> CsvImport:
    out = CsvImport()
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        out.errors.append(RowError(1, "empty file: a header row is required"))
        return out
    except csv.Error as exc:
        out.errors.append(RowError(1, f"unreadable header: {exc}"))
        return out
    try:
        cols = _columns(header, settings)
    except BadInput as exc:
        out.errors.append(RowError(1, str(exc)))
        return out
    seen: dict[str, int] = {}
    currency = settings.currency
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            out.errors.append(RowError(reader.line_num, f"unreadable row: {exc}"))
            continue
        line = reader.line_num
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        out.rows += 1
        try:
            if len(row) > len(header):
                raise BadInput(f"{len(row)} cells but the header has {len(header)}")
            entry = _row(row, cols, currency)
            first = seen.get(entry.prefix)
            if first is not None:
                raise BadInput(f"prefix {entry.prefix} already given on line {first}")
        except BadInput as exc:
            if len(out.errors) < _MAX_ERRORS:
                out.errors.append(RowError(line, str(exc)))
            continue
        seen[entry.prefix] = line
        out.entries.append(entry)
    if out.errors:
        log.warning(
            "rateplan_rows_rejected",
            rejected=len(out.errors),
            kept=len(out.entries),
            first=f"line {out.errors[0].line}: {out.errors[0].reason}",
        )
    return out


def parse_text(text: str, settings: PlanSettings) -> CsvImport:
    return parse_rows(io.StringIO(text, newline=""), settings)


def parse_file(path: Path, settings: PlanSettings) -> CsvImport:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return parse_rows(f, settings)

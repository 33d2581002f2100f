"""Importing leads from CSV.

Streams the file (1,000,000 rows never sit in memory at once): rows are parsed and
checked one by one, and good rows go to Redis in batches through one Lua script call per
batch. Bad rows are reported by line with a reason and skipped; duplicates (same E.164
number, in the file or already in the campaign) are merged into the first lead.

Columns: a phone column (`phone`, `number`, `phone_number`, `msisdn`, `tel`) is required;
an optional `timezone` (`tz`, `time_zone`) column names an IANA zone; every other column
is kept for the agent's screen. Without a timezone column the zone comes from the number
(`phonenumbers.timezone`); a number spanning several zones keeps them all and is called
only when the window is open in every one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import phonenumbers
import structlog
from phonenumbers import timezone as number_zones

from dialer.campaign import Campaign
from dialer.keys import CampaignKeys
from dialer.lead_store import LeadRow, LeadStore
from dialer.rules import next_open, valid_zone

log = structlog.get_logger(__name__)

PHONE_COLUMNS = ("phone", "number", "phone_number", "msisdn", "tel")
TZ_COLUMNS = ("timezone", "tz", "time_zone")
# A number mapping to more zones than this (toll-free, some mobile ranges) tells us
# nothing useful about where the callee is: it needs a timezone column or a fallback.
MAX_DERIVED_ZONES = 3
MAX_ERRORS_KEPT = 10_000
BATCH = 1000


class LeadImportError(ValueError):
    """The file as a whole cannot be imported (no phone column, unreadable)."""


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str  # snake_case: missing_number, invalid_number, unknown_timezone, ...
    detail: str = ""


@dataclass(frozen=True)
class Duplicate:
    line: int
    phone: str
    merged_into_line: int  # -1 if the existing lead's line is unknown


@dataclass(frozen=True)
class ImportProgress:
    rows: int
    imported: int
    merged: int
    rejected: int


@dataclass(frozen=True)
class ImportReport:
    rows: int
    imported: int
    merged: int
    rejected: int
    errors: tuple[RowError, ...]
    duplicates: tuple[Duplicate, ...]
    errors_truncated: bool
    seconds: float


ProgressCallback = Callable[[ImportProgress], None]


def _pick(header: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {h.strip().lower(): h for h in header}
    for n in names:
        if n in lowered:
            return lowered[n]
    return None


class RowParser:
    """Turns one CSV row into a LeadRow or a RowError. Pure apart from zone look-ups."""

    def __init__(self, campaign: Campaign, header: list[str], now: float) -> None:
        phone_col = _pick(header, PHONE_COLUMNS)
        if phone_col is None:
            raise LeadImportError(
                f"no phone column: expected one of {', '.join(PHONE_COLUMNS)}; "
                f"got {', '.join(header) or 'an empty header'}")
        self.campaign = campaign
        self.phone_col = phone_col
        self.tz_col = _pick(header, TZ_COLUMNS)
        self.extra_cols = [h for h in header if h not in (phone_col, self.tz_col) and h]
        self.now = datetime.fromtimestamp(now, UTC)

    def parse(self, row: dict[str, str | None], line: int) -> LeadRow | RowError:
        if None in row:
            return RowError(line, "too_many_fields")
        raw = (row.get(self.phone_col) or "").strip()
        if not raw:
            return RowError(line, "missing_number")
        try:
            number = phonenumbers.parse(raw, self.campaign.default_region)
        except phonenumbers.NumberParseException as exc:
            return RowError(line, "unparseable_number", f"{raw!r}: {exc}")
        if not phonenumbers.is_valid_number(number):
            return RowError(line, "invalid_number", raw)
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        zones = self._zones(row, number)
        if isinstance(zones, RowError):
            return RowError(line, zones.reason, zones.detail)
        due = next_open(self.now, zones, self.campaign.window)
        extras = tuple((c, (row.get(c) or "").strip()) for c in self.extra_cols)
        return LeadRow(e164, zones, line, (due or self.now).timestamp(), extras)

    def _zones(self, row: dict[str, str | None],
               number: phonenumbers.PhoneNumber) -> tuple[str, ...] | RowError:
        given = (row.get(self.tz_col) or "").strip() if self.tz_col else ""
        if given:
            if not valid_zone(given):
                return RowError(0, "unknown_timezone", given)
            return (given,)
        derived = tuple(z for z in number_zones.time_zones_for_number(number)
                        if z != "Etc/Unknown" and valid_zone(z))
        if derived and len(derived) <= MAX_DERIVED_ZONES:
            return derived
        if self.campaign.fallback_timezone:
            return (self.campaign.fallback_timezone,)
        if derived:
            return RowError(0, "ambiguous_timezone",
                            f"number spans {len(derived)} zones; add a timezone column")
        return RowError(0, "unknown_timezone", "no zone for this number")


def _rows(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str | None]]],
                               Callable[[], None]]:
    fh = path.open("r", encoding="utf-8-sig", newline="")
    reader = csv.DictReader(fh)
    try:
        header = list(reader.fieldnames or [])
    except (csv.Error, UnicodeDecodeError) as exc:
        fh.close()
        raise LeadImportError(f"cannot read the header of {path}: {exc}") from exc

    def gen() -> Iterator[tuple[int, dict[str, str | None]]]:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                yield reader.line_num, {"\0error": str(exc)}
                continue
            yield reader.line_num, row

    return header, gen(), fh.close


Batch = tuple[list[LeadRow], list[RowError], int, bool]  # good, bad, rows read, at end


def _read_batch(rows: Iterator[tuple[int, dict[str, str | None]]], parser: RowParser) -> Batch:
    """Read and check rows until a batch of good ones (or the end). Runs in a thread."""
    good: list[LeadRow] = []
    bad: list[RowError] = []
    n = 0
    for line, row in rows:
        n += 1
        if "\0error" in row:
            bad.append(RowError(line, "unreadable_row", str(row["\0error"])))
            continue
        parsed = parser.parse(row, line)
        if isinstance(parsed, RowError):
            bad.append(RowError(line, parsed.reason, parsed.detail))
        else:
            good.append(parsed)
        if len(good) >= BATCH or n >= 5 * BATCH:
            return good, bad, n, False
    return good, bad, n, True


class LeadImporter:
    """Parsing (phonenumbers: ~60 us a row) runs in a worker thread, overlapped with the
    Redis write of the previous batch, so the event loop keeps serving calls."""

    def __init__(self, leads: LeadStore, clock_now: Callable[[], float]) -> None:
        self._leads = leads
        self._now = clock_now

    async def import_leads(self, campaign: Campaign, path: Path | str,
                           progress_cb: ProgressCallback | None = None) -> ImportReport:
        started = time.perf_counter()
        path = Path(path)
        keys = CampaignKeys(campaign.tenant, campaign.campaign_id)
        try:
            header, rows, close = _rows(path)
        except OSError as exc:
            raise LeadImportError(f"cannot open {path}: {exc}") from exc
        errors: list[RowError] = []
        duplicates: list[Duplicate] = []
        n_rows = imported = merged = rejected = 0
        pending: asyncio.Task[Batch] | None = None
        try:
            parser = RowParser(campaign, header, self._now())
            pending = asyncio.create_task(asyncio.to_thread(_read_batch, rows, parser))
            while pending is not None:
                good, bad, n, at_end = await pending
                pending = None if at_end else asyncio.create_task(
                    asyncio.to_thread(_read_batch, rows, parser))
                n_rows += n
                rejected += len(bad)
                errors.extend(bad[:max(0, MAX_ERRORS_KEPT - len(errors))])
                results = await self._leads.import_batch(keys, good)
                for row, res in zip(good, results, strict=True):
                    if res == 0:
                        imported += 1
                    else:
                        merged += 1
                        if len(duplicates) < MAX_ERRORS_KEPT:
                            duplicates.append(Duplicate(row.line, row.phone, res))
                if progress_cb is not None:
                    progress_cb(ImportProgress(n_rows, imported, merged, rejected))
        finally:
            if pending is not None:  # let the reader thread finish before closing its file
                with contextlib.suppress(Exception):
                    await pending
            close()
        report = ImportReport(n_rows, imported, merged, rejected, tuple(errors),
                              tuple(duplicates), rejected > len(errors),
                              time.perf_counter() - started)
        log.info("leads_imported", tenant=campaign.tenant, campaign=campaign.campaign_id,
                 rows=n_rows, imported=imported, merged=merged, rejected=rejected,
                 seconds=round(report.seconds, 2))
        return report

"""Importing leads from CSV into a real Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from dialer.campaign import Campaign
from dialer.csv_import import ImportProgress, LeadImporter, LeadImportError
from dialer.keys import CampaignKeys
from dialer.lead_store import LeadStore
from dialer.leads import LeadState

NOW = 1_780_326_000.0  # 2026-06-01 15:00 UTC
CAMPAIGN = Campaign("acme", "spring", default_region="US")


def write(tmp_path: Path, text: str, name: str = "leads.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture
def store(redis_client: aioredis.Redis) -> LeadStore:
    return LeadStore(redis_client)


async def test_good_rows_import_bad_rows_are_reported_by_line(
        store: LeadStore, tmp_path: Path) -> None:
    path = write(tmp_path, (
        "Phone,Name,Timezone\n"          # line 1
        "(212) 555-0100,Ann,\n"          # 2 ok, zone from the number (New York)
        "not a number,Bob,\n"            # 3 unparseable
        ",Cid,\n"                        # 4 missing
        "212 555 010,Dan,\n"             # 5 too short: invalid
        "+44 20 7946 0958,Eve,\n"        # 6 ok, London
        "310-555-0199,Fay,Mars/Olympus\n"  # 7 unknown timezone
        "415 555 0123,Gus,America/Los_Angeles\n"  # 8 ok, zone from the column
        "800 555 0123,Hal,\n"            # 9 toll-free: spans every US zone
    ))
    progress: list[ImportProgress] = []
    report = await LeadImporter(store, lambda: NOW).import_leads(CAMPAIGN, path,
                                                                 progress.append)
    assert (report.rows, report.imported, report.rejected) == (8, 3, 5)
    assert [(e.line, e.reason) for e in report.errors] == [
        (3, "unparseable_number"), (4, "missing_number"), (5, "invalid_number"),
        (7, "unknown_timezone"), (9, "ambiguous_timezone")]
    assert progress and progress[-1].imported == 3

    keys = CampaignKeys("acme", "spring")
    ann = await store.get(keys, "+12125550100")
    assert ann is not None
    assert ann.timezones == ("America/New_York",)
    assert ann.fields == {"Name": "Ann"}
    assert ann.state is LeadState.PENDING and ann.line == 2
    eve = await store.get(keys, "+442079460958")
    assert eve is not None and eve.timezones == ("Europe/London",)
    gus = await store.get(keys, "+14155550123")
    assert gus is not None and gus.timezones == ("America/Los_Angeles",)
    assert await store.count(keys) == 3


async def test_fallback_timezone_covers_numbers_without_one(
        store: LeadStore, tmp_path: Path) -> None:
    path = write(tmp_path, "number\n800 555 0123\n")
    c = Campaign("acme", "tollfree", fallback_timezone="America/Chicago")
    report = await LeadImporter(store, lambda: NOW).import_leads(c, path)
    assert report.imported == 1
    lead = await store.get(CampaignKeys("acme", "tollfree"), "+18005550123")
    assert lead is not None and lead.timezones == ("America/Chicago",)


async def test_duplicates_are_merged_into_the_first_lead(
        store: LeadStore, tmp_path: Path) -> None:
    path = write(tmp_path, (
        "phone,name,notes\n"
        "212-555-0100,Ann,\n"
        "+1 (212) 555-0100,,VIP\n"       # same number, other spelling
        "212.555.0100,Annie,\n"
    ))
    report = await LeadImporter(store, lambda: NOW).import_leads(CAMPAIGN, path)
    assert (report.imported, report.merged) == (1, 2)
    assert [(d.line, d.merged_into_line) for d in report.duplicates] == [(3, 2), (4, 2)]
    lead = await store.get(CampaignKeys("acme", "spring"), "+12125550100")
    assert lead is not None
    assert lead.fields == {"name": "Annie", "notes": "VIP"}


async def test_reimport_keeps_state_and_attempts(store: LeadStore, tmp_path: Path,
                                                 redis_client: aioredis.Redis) -> None:
    keys = CampaignKeys("acme", "spring")
    path = write(tmp_path, "phone\n212-555-0100\n")
    importer = LeadImporter(store, lambda: NOW)
    await importer.import_leads(CAMPAIGN, path)
    await redis_client.hset(keys.lead("+12125550100"),
                            mapping={"state": "done", "attempts": "2"})
    report = await importer.import_leads(CAMPAIGN, path)
    assert (report.imported, report.merged) == (0, 1)
    lead = await store.get(keys, "+12125550100")
    assert lead is not None and lead.state is LeadState.DONE and lead.attempts == 2


async def test_file_without_a_phone_column_is_refused(store: LeadStore,
                                                      tmp_path: Path) -> None:
    path = write(tmp_path, "name,email\nAnn,a@example.com\n")
    with pytest.raises(LeadImportError, match="no phone column"):
        await LeadImporter(store, lambda: NOW).import_leads(CAMPAIGN, path)


async def test_ragged_rows_are_rejected_not_fatal(store: LeadStore, tmp_path: Path) -> None:
    path = write(tmp_path, 'phone,name\n212-555-0100,Ann,extra\n"415 555 0123",Gus\n')
    report = await LeadImporter(store, lambda: NOW).import_leads(CAMPAIGN, path)
    assert report.imported == 1
    assert [(e.line, e.reason) for e in report.errors] == [(2, "too_many_fields")]


async def test_leads_of_one_tenant_are_invisible_to_another(
        store: LeadStore, tmp_path: Path) -> None:
    path = write(tmp_path, "phone\n212-555-0100\n")
    await LeadImporter(store, lambda: NOW).import_leads(CAMPAIGN, path)
    assert await store.get(CampaignKeys("acme", "spring"), "+12125550100") is not None
    assert await store.get(CampaignKeys("globex", "spring"), "+12125550100") is None
    assert await store.due_count(CampaignKeys("globex", "spring"), NOW + 86_400) == 0


async def test_thousands_of_rows_stream_in_batches(store: LeadStore, tmp_path: Path) -> None:
    rows = "".join(f"212555{i:04d},{i}\n" for i in range(2500))
    path = write(tmp_path, "phone,ref\n" + rows)
    seen: list[int] = []
    report = await LeadImporter(store, lambda: NOW).import_leads(
        CAMPAIGN, path, lambda p: seen.append(p.rows))
    assert report.imported + report.rejected == 2500
    assert len(seen) >= 3  # one progress report per batch of 1000
    assert await store.count(CampaignKeys("acme", "spring")) == report.imported

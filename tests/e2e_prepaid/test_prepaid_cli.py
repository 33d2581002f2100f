"""The operator's prepaid commands, run as `callgate ...` processes against a real Redis."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from prepaid import keys
from tests.support.servers import RedisServer

SECRET = "cli-test-secret-0123456789"


@pytest.fixture
def conf(tmp_path: Path, redis_proc: RedisServer) -> Path:
    redis.Redis.from_url(redis_proc.url).flushall()
    path = tmp_path / "callgate.toml"
    path.write_text(f'[site]\nname = "shop"\n[redis]\nurl = "{redis_proc.url}"\n'
                    f'[prepaid]\npin_secret = "{SECRET}"\n')
    return path


def _cli(conf: Path, group: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", group, "--config", str(conf),
                           *args], capture_output=True, text=True, timeout=60)


def test_rate_import_reports_bad_rows_by_line_and_keeps_the_good(
    conf: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.csv"
    plan.write_text("prefix,destination,rate,increments\n44,UK,0.60,1/1\nxx,bad,1,1/1\n"
                    "4420,London,0.50,30/6\n")
    done = _cli(conf, "rate", "import", "std", str(plan), "--currency", "EUR")
    assert done.returncode == 0, done.stderr
    assert f"{plan}:3: prefix 'xx'" in done.stderr
    assert "2 prefixes imported, 1 bad rows skipped" in done.stdout
    done = _cli(conf, "rate", "show", "std", "--lookup", "442071234")
    assert "prefix 4420 London" in done.stdout


def test_card_batch_csv_holds_the_pins_redis_only_their_hash(
    conf: Path, tmp_path: Path, redis_proc: RedisServer
) -> None:
    out = tmp_path / "cards.csv"
    done = _cli(conf, "card", "create", "--batch", "50", "--value", "10.00", "--currency",
                "EUR", "--plan", "std", "--tenant", "shop1", "--expires", "180d",
                "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 50 and {r["value"] for r in rows} == {"10.00"}
    r = redis.Redis.from_url(redis_proc.url)
    stored = r.hgetall(keys.card(rows[0]["card"]))
    assert stored[b"status"] == b"created" and stored[b"balance"] == b"1000"
    assert rows[0]["pin"].encode() not in stored.values()
    card = rows[0]["card"]
    assert _cli(conf, "card", "sell", card).returncode == 0
    first = _cli(conf, "card", "topup", card, "2.50", "--reference", "rcpt-1")
    again = _cli(conf, "card", "topup", card, "2.50", "--reference", "rcpt-1")
    assert "credited; balance 12.50 EUR" in first.stdout
    assert "already credited" in again.stdout and "12.50 EUR" in again.stdout
    assert _cli(conf, "card", "block", card, "--reason", "stolen").returncode == 0
    bind = _cli(conf, "card", "bind", card, "--device", "booth-3")
    assert bind.returncode == 2 and "blocked" in bind.stderr
    assert "blocked" in _cli(conf, "card", "show", card).stdout
    listed = _cli(conf, "card", "list", "--tenant", "shop1").stdout.strip().splitlines()
    assert len(listed) == 50


def test_voucher_is_redeemed_once(conf: Path, tmp_path: Path) -> None:
    cards = tmp_path / "cards.csv"
    _cli(conf, "card", "create", "--batch", "1", "--value", "1.00", "--currency", "EUR",
         "--plan", "std", "--tenant", "shop1", "--sold", "--out", str(cards))
    card = next(csv.DictReader(cards.open()))["card"]
    vouchers = tmp_path / "v.csv"
    assert _cli(conf, "voucher", "create", "--count", "3", "--value", "5.00", "--currency",
                "EUR", "--out", str(vouchers)).returncode == 0
    code = next(csv.DictReader(vouchers.open()))["code"]
    assert "balance 6.00 EUR" in _cli(conf, "voucher", "redeem", code, "--card", card).stdout
    again = _cli(conf, "voucher", "redeem", code, "--card", card)
    assert again.returncode == 1 and "already redeemed" in again.stderr


def test_cdr_export_of_an_empty_range_and_a_bad_date(conf: Path, tmp_path: Path) -> None:
    out = tmp_path / "cdr.jsonl"
    done = _cli(conf, "cdr", "export", "--from=-1d", "--format", "jsonl", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "" and "0 CDRs" in done.stderr
    bad = _cli(conf, "cdr", "export", "--from", "yesterday")
    assert bad.returncode == 2 and "is not a date" in bad.stderr


def test_card_commands_need_the_pin_secret(tmp_path: Path, redis_proc: RedisServer) -> None:
    path = tmp_path / "nosecret.toml"
    path.write_text(f'[redis]\nurl = "{redis_proc.url}"\n')
    done = _cli(path, "card", "create", "--batch", "1", "--value", "1", "--currency", "EUR",
                "--plan", "std", "--tenant", "shop1")
    assert done.returncode == 2 and "pin_secret" in done.stderr

"""`callgate campaign ...` against a real Redis named by a config file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import redis

from gateway.commands import campaign as campaign_cli
from tests.support.servers import RedisServer


@pytest.fixture
def cli(tmp_path: Path, redis_proc: RedisServer, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    redis.Redis.from_url(redis_proc.url).flushall()
    config = tmp_path / "callgate.toml"
    config.write_text(f'[site]\nname = "cli"\n\n[redis]\nurl = "{redis_proc.url}"\n')
    parser = argparse.ArgumentParser(prog="callgate")
    campaign_cli.add_parser(parser.add_subparsers(dest="command", required=True))

    def run(*argv: str) -> tuple[int, str, str]:
        args = parser.parse_args(["campaign", "--config", str(config), *argv])
        code: int = args.func(args)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_create_import_set_show_stats(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("create", "spring", "--tenant", "acme", "--mode", "predictive",
                         "--queue", "sales", "--trunk", "sip-out", "--window", "08:00-20:00",
                         "--days", "mon-fri", "--retry", "busy=600,no_answer=1800",
                         "--max-abandon", "2.5%")
    assert code == 0, err
    assert "mode predictive" in out and "window 08:00-20:00 mon,tue,wed,thu,fri" in out
    assert "retry after busy 600 s, no answer 1800 s" in out
    assert "abandon target 2.5%" in out
    code, _, err = cli("create", "spring", "--tenant", "acme", "--queue", "sales")
    assert code == 1 and "exists" in err

    leads = tmp_path / "leads.csv"
    leads.write_text(
        "phone,timezone,name\n"
        "+4915100000001,Europe/Berlin,Ann\n"
        "12345,Europe/Berlin,Bad number\n"
        "+4915100000002,Mars/Olympus,Bad zone\n"
        "+4915100000003,,Zone from the number\n"
        "+49 151 00000001,Europe/Berlin,Ann again\n", encoding="utf-8")
    code, out, err = cli("import-leads", "spring", str(leads), "--tenant", "acme")
    assert code == 0, err
    assert "5 rows: 2 imported, 1 duplicates merged, 2 rejected" in out
    assert "line 3: invalid_number" in out
    assert "line 4: unknown_timezone (Mars/Olympus)" in out
    assert "line 6: +4915100000001 merged into line 2" in out

    code, out, err = cli("set", "spring", "--tenant", "acme", "--pause", "--max-ratio", "1.5",
                         "--max-abandon", "0.02", "--by", "sup1")
    assert code == 0, err
    assert "PAUSED" in out and "max ratio 1.5" in out and "abandon target 2.0%" in out
    code, _, err = cli("set", "spring", "--tenant", "acme", "--max-ratio", "50")
    assert code == 2 and "max_ratio" in err

    code, out, _ = cli("show", "spring", "--tenant", "acme")
    assert code == 0
    assert "leads 2: " in out and "0 closed or in a call" in out
    assert "sup1: paused 0 -> 1" in out and "sup1: max_ratio 3.0 -> 1.5" in out
    code, out, _ = cli("show", "--tenant", "acme")
    assert code == 0 and out.split()[:3] == ["spring", "predictive", "paused"]

    code, out, _ = cli("stats", "spring", "--tenant", "acme")
    assert code == 0 and "no gateway is pacing it" in out
    code, out, _ = cli("stats", "spring", "--tenant", "acme", "--json")
    assert json.loads(out)["dials"] == 0

    # Another tenant sees nothing of it.
    code, _, err = cli("show", "spring", "--tenant", "globex")
    assert code == 1 and "no campaign 'spring' for tenant 'globex'" in err


def test_bad_input_gets_one_clear_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("create", "q", "--tenant", "acme", "--mode", "predictive")
    assert code == 2 and "needs --queue" in err
    code, _, err = cli("create", "q", "--tenant", "acme", "--queue", "s", "--window", "21-09")
    assert code == 2 and "must be before end" in err
    code, _, err = cli("create", "bad{id}", "--tenant", "acme", "--queue", "s")
    assert code == 2 and "campaign_id" in err
    with pytest.raises(SystemExit):
        cli("create", "q", "--tenant", "acme", "--queue", "s", "--max-abandon", "3")
    assert cli("create", "q", "--tenant", "acme", "--queue", "s")[0] == 0
    no_phone = tmp_path / "x.csv"
    no_phone.write_text("name,city\nAnn,Berlin\n", encoding="utf-8")
    code, _, err = cli("import-leads", "q", str(no_phone), "--tenant", "acme")
    assert code == 1 and "no phone column" in err
    code, _, err = cli("import-leads", "q", str(tmp_path / "missing.csv"), "--tenant", "acme")
    assert code == 1 and "cannot open" in err
    code, _, err = cli("set", "q", "--tenant", "acme")
    assert code == 2 and "nothing to change" in err

"""Dialer pacing benchmark: progressive vs predictive in a simulated call centre.

Runs the real CampaignEngine (pacing model, estimates, abandon feedback, agent state
from queue events) against dialer.simulation's call centre, 4 simulated hours per run,
the same seed for every mode so both modes meet the same callees:

  20 agents; live-answer rate 30 % (also 10 % and 60 %); the other dials: 57 % ring out
  the 30 s dial timeout, 21 % answering machines (hung up 3.5 s after answer), 15 % busy,
  7 % fail fast; post-dial delay uniform 2-5 s, then ring-to-answer lognormal mean 10 s
  sd 6 s; AMD passes a person on 2 s after answer; agent phone answers in 0.5 s; talk
  time lognormal mean 90 s sd 70 s; wrap-up 10 s (queue wrapuptime); 2 s to reach an
  agent before a call counts as abandoned; trunk share 80 channels, 10 calls/s.

Also a run where the supervisor lowers the target from 3 % to 1 % at hour 2.
Prints a side-by-side table; the last line is JSON.

    .venv/bin/python bench/dialer.py [--seed N] [--hours H]
    .venv/bin/python bench/dialer.py --import-rows 100000   # also time a CSV import
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dialer.campaign import Campaign, DialMode  # noqa: E402
from dialer.simulation import CallCentre, SimResult, SupervisorChange, simulate  # noqa: E402

ANSWER_RATES = (0.3, 0.1, 0.6)
CHANGE_AT_S = 2 * 3600.0


def _quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def _campaign(mode: DialMode) -> Campaign:
    return Campaign("bench", f"pacing-{mode.value}", mode=mode, agent_queue="sales",
                    abandon_target=0.03, max_ratio=3.0, max_channels=80, max_cps=10.0,
                    dial_timeout_s=30, connect_within_s=2.0, wrap_up_s=10.0)


def _run(job: tuple[str, float, bool, int, float]) -> tuple[str, SimResult, float]:
    _quiet()
    mode, answer_rate, change, seed, hours = job
    started = time.perf_counter()
    changes = [SupervisorChange.of(CHANGE_AT_S, abandon_target=0.01)] if change else []
    result = simulate(_campaign(DialMode(mode)), CallCentre(answer_rate=answer_rate),
                      duration_s=hours * 3600.0, seed=seed, changes=changes,
                      period_edges=[CHANGE_AT_S] if change else [])
    key = f"{mode}@{answer_rate:g}" + ("+target_1pct_at_2h" if change else "")
    return key, result, time.perf_counter() - started


def _pct(x: float) -> str:
    return f"{100 * x:5.1f} %"


def pacing(seed: int, hours: float) -> dict[str, dict[str, float]]:
    jobs = [(m, ar, False, seed, hours) for ar in ANSWER_RATES
            for m in ("predictive", "progressive")]
    jobs.append(("predictive", 0.3, True, seed, hours))
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 2)) as pool:
        results = {key: (r, secs) for key, r, secs in pool.map(_run, jobs)}
    wall = time.perf_counter() - started

    print(f"dialer pacing, {hours:g} simulated hours per run, seed {seed}, "
          f"20 agents, talk lognormal mean 90 s sd 70 s, wrap-up 10 s")
    print(f"{'answer rate':>11} | {'mode':<11} | {'occupancy':>9} | {'abandon':>8} | "
          f"{'talk min/agent-h':>16} | {'idle s/call':>11} | {'dials':>6} | sim s")
    figures: dict[str, dict[str, float]] = {}
    for ar in ANSWER_RATES:
        for mode in ("progressive", "predictive"):
            r, secs = results[f"{mode}@{ar:g}"]
            figures[f"{mode}@{ar:g}"] = r.figures()
            print(f"{ar:>11.0%} | {mode:<11} | {_pct(r.occupancy):>9} | "
                  f"{_pct(r.abandon_rate):>8} | {r.talk_min_per_agent_hour:>16.1f} | "
                  f"{r.mean_wait_s:>11.1f} | {r.dials:>6} | {secs:4.1f}")
        pred, prog = results[f"predictive@{ar:g}"][0], results[f"progressive@{ar:g}"][0]
        ratio = pred.talk_min_per_agent_hour / prog.talk_min_per_agent_hour
        figures[f"predictive@{ar:g}"]["talk_vs_progressive"] = round(ratio, 3)
        print(f"{'':>11} | predictive talk time = {ratio:.2f} x progressive")

    change, _ = results["predictive@0.3+target_1pct_at_2h"]
    before, after = change.periods
    print(f"supervisor change at hour 2, target 3 % -> 1 % (answer rate 30 %): abandon "
          f"{_pct(before.abandon_rate)} before ({before.abandoned}/{before.live_answers}), "
          f"{_pct(after.abandon_rate)} after ({after.abandoned}/{after.live_answers}); "
          f"whole run occupancy {_pct(change.occupancy)}")
    figures["predictive@0.3+target_1pct_at_2h"] = {
        **change.figures(),
        "abandon_rate_before_change": round(before.abandon_rate, 4),
        "abandon_rate_after_change": round(after.abandon_rate, 4),
    }

    p3 = figures["predictive@0.3"]
    checks = [
        ("predictive@0.3 abandon <= 3 %", p3["abandon_rate"] <= 0.03),
        ("predictive@0.3 occupancy >= 85 %", p3["occupancy"] >= 0.85),
        ("predictive@0.3 talk time >= 1.5 x progressive", p3["talk_vs_progressive"] >= 1.5),
        ("abandon after the change to 1 % <= 1 %",
         figures["predictive@0.3+target_1pct_at_2h"]["abandon_rate_after_change"] <= 0.01),
    ]
    for name, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name}")
    print(f"wall time {wall:.1f} s")
    return figures


async def _import(rows: int) -> dict[str, float]:
    from redis.asyncio import Redis

    from dialer.csv_import import LeadImporter
    from dialer.lead_store import LeadStore
    from tests.support.servers import redis_server

    campaign = Campaign("bench", "import", default_region="US")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "leads.csv"
        with path.open("w", encoding="utf-8") as fh:
            fh.write("phone,first_name,last_name,account\n")
            for i in range(rows):
                area = (212, 415, 312, 305, 206)[i % 5]
                fh.write(f"({area}) {200 + i // 10000 % 800:03d}-{i % 10000:04d},"
                         f"Name{i},Surname{i},A{i}\n")
        with redis_server(Path(tmp)) as srv:
            client = Redis.from_url(srv.url)
            try:
                report = await LeadImporter(LeadStore(client), time.time).import_leads(
                    campaign, path)
            finally:
                await client.aclose()
    print(f"CSV import: {report.rows} rows in {report.seconds:.1f} s "
          f"({report.rows / report.seconds:,.0f} rows/s): {report.imported} imported, "
          f"{report.merged} merged, {report.rejected} rejected")
    return {"rows": report.rows, "seconds": round(report.seconds, 2),
            "rows_per_s": round(report.rows / report.seconds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--hours", type=float, default=4.0)
    ap.add_argument("--import-rows", type=int, default=0,
                    help="also time importing this many CSV rows into a private Redis")
    args = ap.parse_args()
    _quiet()
    figures: dict[str, dict[str, float]] = pacing(args.seed, args.hours)
    if args.import_rows:
        figures["csv_import"] = asyncio.run(_import(args.import_rows))
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()

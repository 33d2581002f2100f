"""Call detail records: one per call, answered or not, kept in a Redis stream.

The settlement writes a call's CDR atomically with its charge, into the account's outbox
(same slot as the money); it is then appended to the global stream `callgate:{cdr}:stream`
exactly once (cdr_append.lua, deduplicated by session id) and removed from the outbox. A
gateway killed between the two finishes the relay when it resumes, or the next hangup
replay does. Stream entry ids are never earlier than the call's end, so exporting a time
range reads from the range's start and filters on the end time.

Money fields are integer minor units of `currency`; times are epoch milliseconds in JSON
and ISO 8601 UTC in CSV.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import structlog

from prepaid import keys
from prepaid.money import TaxLine, format_rate
from prepaid.replies import text
from prepaid.scripts import PrepaidScripts, RedisClient

log = structlog.get_logger(__name__)

RELAY_MEMORY_MS = 7 * 86400 * 1000
RELAY_CHUNK = 500
CSV_COLUMNS = (
    "session_id", "call_id", "account", "tenant", "caller", "destination", "prefix",
    "destination_name", "plan", "currency", "rate_per_minute", "band", "start", "answer",
    "end", "duration_s", "billable_s", "free_s", "net", "taxes", "tax_total", "total",
    "charge", "uncollected", "balance_after", "hangup_cause", "ended_by", "emergency",
    "gateway",
)


@dataclass(frozen=True)
class Cdr:
    session_id: str
    call_id: str
    account: str
    tenant: str
    caller: str
    destination: str
    prefix: str
    destination_name: str
    plan: str
    currency: str
    rate: int  # per minute, 1/RATE_SCALE minor units, band at answer
    band: str
    start_ms: int  # authorization
    answer_ms: int  # 0: never answered
    end_ms: int
    duration_s: int
    billable_s: int
    free_s: int  # covered by a free-minute bundle
    net: int
    taxes: tuple[TaxLine, ...]
    total: int  # rated price, taxes included
    charge: int  # taken from the account: total, less `uncollected`
    uncollected: int  # rated but not taken (the account would have gone below its floor)
    balance_after: int
    hangup_cause: int
    ended_by: str  # caller | callee | credit | limit | system
    emergency: bool
    gateway: str

    @classmethod
    def from_json(cls, raw: str | bytes) -> Cdr:
        d: dict[str, Any] = json.loads(raw)
        d["taxes"] = tuple(TaxLine(str(n), int(a)) for n, a in d.get("taxes", ()))
        d["emergency"] = bool(d.get("emergency", False))
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["taxes"] = [[t.name, t.amount] for t in self.taxes]
        return d

    def csv_row(self) -> list[str | int]:
        def iso(ms: int) -> str:
            if not ms:
                return ""
            return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")

        return [
            self.session_id, self.call_id, self.account, self.tenant, self.caller,
            self.destination, self.prefix, self.destination_name, self.plan, self.currency,
            format_rate(self.rate, self.currency) if self.currency else "", self.band,
            iso(self.start_ms), iso(self.answer_ms), iso(self.end_ms), self.duration_s,
            self.billable_s, self.free_s, self.net,
            ";".join(f"{t.name}={t.amount}" for t in self.taxes),
            sum(t.amount for t in self.taxes), self.total, self.charge, self.uncollected,
            self.balance_after, self.hangup_cause, self.ended_by, int(self.emergency),
            self.gateway,
        ]


@dataclass(frozen=True, slots=True)
class RelayItem:
    """A settled call whose CDR waits in its account's outbox for the stream."""

    account: str
    session_id: str
    owner: str  # gateway whose live index points at the session
    end_ms: int
    cdr_json: str


def queue_appends(pipe: Any, cdr_append_sha: str, items: Sequence[RelayItem]) -> None:
    """First step of a relay: append each CDR to the stream exactly once (cdr_append.lua).
    Works on an asyncio or a sync pipeline."""
    for it in items:
        pipe.evalsha(cdr_append_sha, 2, keys.CDR_STREAM, keys.CDR_IDS, it.session_id,
                     it.end_ms, it.cdr_json, RELAY_MEMORY_MS)


def queue_cleanups(pipe: Any, items: Sequence[RelayItem]) -> None:
    """Second step, only for CDRs the first step appended: clear the outbox entry and the
    gateway's pointer."""
    for it in items:
        pipe.hdel(keys.cdr_outbox(it.account), it.session_id)
        pipe.srem(keys.gateway_live(it.owner), it.session_id)


def appended(items: Sequence[RelayItem], replies: Sequence[Any]) -> list[RelayItem]:
    return [it for it, r in zip(items, replies, strict=True) if not isinstance(r, Exception)]


def cdr_head(fields: Mapping[str, Any]) -> str:
    """The CDR JSON without its closing brace: settle.lua appends the money it moved."""
    return json.dumps(dict(fields), separators=(",", ":"))[:-1]


class CdrStore:
    def __init__(self, redis: RedisClient, scripts: PrepaidScripts | None = None) -> None:
        self._r = redis
        self._scripts = scripts or PrepaidScripts.register(redis)

    async def pending(self, account: str) -> dict[str, str]:
        """CDRs settled but not yet in the stream (a gateway died in between)."""
        raw = await self._r.hgetall(keys.cdr_outbox(account))
        return {text(k): text(v) for k, v in raw.items()}

    async def iter_range(
        self,
        from_ts: float,
        to_ts: float,
        tenant: str | None = None,
        max_relay_lag_s: float = 86400.0,
    ) -> AsyncIterator[Cdr]:
        """CDRs of calls that ended in [from_ts, to_ts), in stream order. Reading stops
        `max_relay_lag_s` past the range: a CDR relayed later than that is not seen."""
        from_ms, to_ms = int(from_ts * 1000), int(to_ts * 1000)
        stop = f"{to_ms + int(max_relay_lag_s * 1000)}-0"
        start = f"{from_ms}-0"
        while True:
            page = await self._r.xrange(keys.CDR_STREAM, start, stop, count=1000)
            if not page:
                return
            for entry_id, fields in page:
                raw = (fields or {}).get(b"cdr") or (fields or {}).get("cdr")
                if raw is None:
                    continue
                try:
                    cdr = Cdr.from_json(raw)
                except (ValueError, KeyError, TypeError):
                    log.error("cdr_unreadable", entry=text(entry_id))
                    continue
                if from_ms <= cdr.end_ms < to_ms and (tenant is None or cdr.tenant == tenant):
                    yield cdr
            start = "(" + text(page[-1][0])

    async def export(
        self,
        from_ts: float,
        to_ts: float,
        out: TextIO,
        fmt: Literal["csv", "jsonl"] = "csv",
        tenant: str | None = None,
    ) -> int:
        """What `callgate cdr export --from --to [--format] [--tenant]` writes; returns rows."""
        n = 0
        writer = csv.writer(out) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(CSV_COLUMNS)
        async for cdr in self.iter_range(from_ts, to_ts, tenant):
            if writer is not None:
                writer.writerow(cdr.csv_row())
            else:
                out.write(json.dumps(cdr.to_dict(), separators=(",", ":")) + "\n")
            n += 1
        return n

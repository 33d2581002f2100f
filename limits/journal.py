"""The local record of what was decided while Redis was unreachable (invariant 6).

Grants made then (fail_open calls, emergency calls) and releases that could not reach
Redis are appended here, in order, and replayed into Redis when it answers again: a grant
becomes a lease flagged `fail_open` plus a record in the site's `failopen` hash, a release
frees it. With a path the journal is also a JSON-lines file, so a gateway restarted during
the outage still writes back what it granted before.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

from limits.model import CallRequest, Direction

log = structlog.get_logger(__name__)

Op = Literal["grant", "release"]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    op: Op
    lease_id: str
    at: float
    reason: str = ""
    request: CallRequest | None = None

    def to_json(self) -> str:
        doc: dict[str, Any] = {"op": self.op, "lease_id": self.lease_id, "at": self.at,
                               "reason": self.reason}
        if self.request is not None:
            req = asdict(self.request)
            req["direction"] = self.request.direction.value
            req["pools"] = list(self.request.pools)
            doc["request"] = req
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> JournalEntry:
        doc = json.loads(line)
        req = doc.get("request")
        request = None
        if req is not None:
            req["direction"] = Direction(req["direction"])
            req["pools"] = tuple(req.get("pools", ()))
            request = CallRequest(**req)
        op = doc["op"]
        if op not in ("grant", "release"):
            raise ValueError(f"unknown journal op {op!r}")
        return cls(op, str(doc["lease_id"]), float(doc["at"]), str(doc.get("reason", "")),
                   request)


class FailOpenJournal:
    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._entries: list[JournalEntry] = []
        if path is not None and path.exists():
            self._entries = _load(path)

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    @property
    def entries(self) -> tuple[JournalEntry, ...]:
        return tuple(self._entries)

    def append(self, entry: JournalEntry) -> None:
        self._entries.append(entry)
        if self._path is not None:
            with self._path.open("a", encoding="utf-8") as f:
                f.write(entry.to_json() + "\n")

    def drop_written(self, count: int) -> None:
        """Forget the first `count` entries, now in Redis."""
        del self._entries[:count]
        if self._path is not None:
            tmp = self._path.with_suffix(self._path.suffix + ".tmp")
            tmp.write_text("".join(e.to_json() + "\n" for e in self._entries), encoding="utf-8")
            tmp.replace(self._path)


def _load(path: Path) -> list[JournalEntry]:
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(JournalEntry.from_json(line))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("failopen_journal_bad_line", path=str(path), line=lineno, error=str(exc))
    return entries

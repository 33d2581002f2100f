"""When a card call really ended, as Asterisk recorded it in its AstDB, for calls that ended
while no gateway was watching (gateway down, AMI cut).

The `h` extension of a card call writes, before its `release` AGI:

    Set(DB(callgate_end/${CALLGATE_LEASE})=${STRFTIME(,,%s.%3q)})

the end of the call in epoch seconds to the millisecond (examples/asterisk/extensions.conf).
The session knows its answer time, so end - answer is the real duration. A gateway that was
up deletes the record once the call is settled (`release` route); one that comes back
after a crash reads it (AMI DBGet: a one-item event list, DBGetResponse with `Val`), settles
the session with it and deletes it (DBDel). A missing record is None: the caller falls back
to its older rule and says so (`prepaid_end_unknown`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

import structlog

from ami import AmiError
from ami.client import AmiClient

log = structlog.get_logger(__name__)

END_FAMILY = "callgate_end"


class _Link(Protocol):
    @property
    def client(self) -> AmiClient: ...


class EndRecords:
    def __init__(self, asterisks: Mapping[str, _Link]) -> None:
        self._asterisks = asterisks

    async def end_of(self, lease: str) -> float | None:
        """The call's recorded end, epoch seconds; None when no Asterisk has a usable one."""
        for name, link in self._asterisks.items():
            if not link.client.logged_in:
                continue
            try:
                res = await link.client.action(
                    "DBGet", [("Family", END_FAMILY), ("Key", lease)])
            except AmiError as exc:
                log.warning("prepaid_end_read_failed", lease=lease, asterisk=name,
                            error=str(exc))
                continue
            if not res.ok:
                continue  # "Database entry not found": maybe on another Asterisk
            for ev in res.events:
                if ev.name.lower() == "dbgetresponse" and ev.get("Key") == lease:
                    end = parse_end(ev.get("Val") or "")
                    if end is None:
                        log.warning("prepaid_end_unreadable", lease=lease, asterisk=name,
                                    value=ev.get("Val"))
                    return end
        return None

    async def forget(self, lease: str) -> None:
        """DBDel on every Asterisk (the record is on the one that ran the call)."""
        for name, link in self._asterisks.items():
            if not link.client.logged_in:
                continue
            try:
                res = await link.client.action(
                    "DBDel", [("Family", END_FAMILY), ("Key", lease)])
            except AmiError as exc:
                log.warning("prepaid_end_delete_failed", lease=lease, asterisk=name,
                            error=str(exc))
                continue
            if res.ok:
                return


def parse_end(value: str) -> float | None:
    """'1732370000.123' (or a whole ${EPOCH}, or followed by more words) -> epoch seconds."""
    words = value.split()
    if not words:
        return None
    try:
        end = float(words[0])
    except ValueError:
        return None
    if not math.isfinite(end) or end <= 0:
        return None
    return end

"""When a card call really ended, as Asterisk recorded it in its AstDB, for calls that ended
while no gateway was watching (gateway down, AMI cut).

The `h` extension of a card call writes, before its `release` AGI:

    Set(DB(callgate_end/${CALLGATE_LEASE})=${STRFTIME(,,%s.%3q)},${ANSWEREDTIME_MS},${CALLGATE_ANSWER_AT})

the end of the call in epoch seconds to the millisecond, then the answered duration Dial
left on the calling channel, then when the callee answered as the Dial's U() subroutine
recorded it (callgate_answer/<lease>, read back with DB_DELETE; examples/asterisk/
extensions.conf). The session usually knows its answer time (the gateway saw it on AMI),
so end - answer is the real duration; a call answered while the gateway was down has
none: the third field gives it exactly, and `end - answered ms` stands in without it.
ANSWEREDTIME_MS is empty when the callee never answered (Dial clears it when it starts),
and it is the calling channel's up time (ast_channel_get_up_time_ms), so it runs from the
first answer of that channel: when the dialplan answered the caller before the Dial (the
`prepaid` IVR does), it also counts the IVR and the ringing; the caller clamps it (see
PrepaidCalls.sweep_gone).

A record of an older dialplan holds the end only (`1732370000.123`): it is still read, with
the answered duration unknown. A gateway that was up deletes the record once the call is
settled (`release` route); one that comes back after a crash reads it (AMI DBGet: a
one-item event list, DBGetResponse with `Val`), settles the session with it and deletes it
(DBDel). A missing record is None: the caller falls back to its older rule and says so
(`prepaid_end_unknown`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog

from ami import AmiError
from ami.client import AmiClient

log = structlog.get_logger(__name__)

END_FAMILY = "callgate_end"


@dataclass(frozen=True)
class EndRecord:
    end: float  # epoch seconds
    answered_ms: int | None  # Dial's ANSWEREDTIME_MS; 0 not answered, None not recorded
    callee_answered: float | None = None  # epoch s, from the Dial U() subroutine

    @property
    def answered_at(self) -> float | None:
        """When the callee answered, epoch seconds: exact from the Dial U() subroutine's
        record, else end - answered duration; None unless the record says answered."""
        if self.callee_answered is not None:
            return self.callee_answered
        if not self.answered_ms:
            return None
        return self.end - self.answered_ms / 1000

    @property
    def exact(self) -> bool:
        """The answer time is the callee's own, not the calling channel's up time."""
        return self.callee_answered is not None

    def charged_from(self, decided_at: float | None) -> float | None:
        """When to charge a call the gateway never saw answered: the answer above, never
        before the gateway's decision (no callee answers before the Dial; the calling
        channel's up time can start earlier) nor after the end; None if not answered."""
        answered_at = self.answered_at
        if answered_at is None:
            return None
        if decided_at is not None:
            answered_at = max(answered_at, decided_at)
        return min(answered_at, self.end)


class _Link(Protocol):
    @property
    def client(self) -> AmiClient: ...


class EndRecords:
    def __init__(self, asterisks: Mapping[str, _Link]) -> None:
        self._asterisks = asterisks

    async def end_of(self, lease: str) -> EndRecord | None:
        """The call's recorded end; None when no Asterisk has a usable one."""
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
                    record = parse_end(ev.get("Val") or "")
                    if record is None:
                        log.warning("prepaid_end_unreadable", lease=lease, asterisk=name,
                                    value=ev.get("Val"))
                    return record
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


def parse_end(value: str) -> EndRecord | None:
    """'1732370000.123,4520' -> EndRecord(1732370000.123, 4520). The older one-field
    '1732370000.123' (or a whole ${EPOCH}, or followed by more words) has answered_ms None;
    so has an answered field that is not a whole number of ms >= 0. An empty one (Dial never
    answered) is 0. None when the end itself is unusable."""
    words = value.split()
    if not words:
        return None
    end_text, comma, answered_text = words[0].partition(",")
    end = parse_epoch(end_text)
    if end is None:
        return None
    if not comma:
        return EndRecord(end, None)
    answered_text, _, callee_text = answered_text.partition(",")
    callee = parse_epoch(callee_text.partition(",")[0])
    if callee is not None and callee > end:
        callee = None
    answered_text = answered_text.strip()
    if not answered_text:
        return EndRecord(end, 0, callee)
    if not answered_text.isdigit():
        return EndRecord(end, None, callee)
    return EndRecord(end, int(answered_text), callee)


def parse_epoch(text: str) -> float | None:
    """`1732370000.123` -> a float; None for empty or unusable text."""
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None

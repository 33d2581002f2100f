"""Live calls as the API shows them, and the adapter from the AMI channel tables.

The API matches a live call to its tenant only through its lease (`CALLGATE_LEASE`, set
on the channel by the `authorize` hook): the channel table knows no tenants (ami/ must
not), so a live call without a lease belongs to no tenant the API could name and is
shown to site-wide tokens only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ami import ChannelTable
from gateway.agi.decision import LEASE_VAR


@dataclass(frozen=True, slots=True)
class LiveCall:
    asterisk: str  # which configured Asterisk carries it
    call_id: str  # Asterisk's Linkedid
    lease_id: str  # "" when the call holds no lease
    channels: tuple[str, ...]
    answered: bool
    caller: str = ""
    exten: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"asterisk": self.asterisk, "call_id": self.call_id, "lease_id": self.lease_id,
                "channels": list(self.channels), "answered": self.answered,
                "caller": self.caller, "exten": self.exten}


LiveCallsProvider = Callable[[], Iterable[LiveCall] | Awaitable[Iterable[LiveCall]]]


def live_calls_from_tables(tables: Mapping[str, ChannelTable]) -> Callable[[], list[LiveCall]]:
    """A `live_calls` provider over the channel tables of the configured Asterisks."""

    def snapshot() -> list[LiveCall]:
        out = []
        for asterisk, table in tables.items():
            for call in table.calls():
                live = call.live_channels
                if not live:
                    continue
                first = call.channels[0] if call.channels else live[0]
                out.append(LiveCall(
                    asterisk=asterisk, call_id=call.linkedid,
                    lease_id=call.variables.get(LEASE_VAR, ""),
                    channels=tuple(c.name for c in live), answered=call.answered,
                    caller=first.caller_num, exten=first.exten,
                ))
        return out

    return snapshot

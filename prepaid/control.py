"""What prepaid needs from the outside world, as protocols the gateway implements.

prepaid never talks AMI or MQTT itself (DESIGN: domain packages do not): the gateway passes
a `CallControl` that hangs a channel up (AMI Hangup) or plays a prompt to one or both legs
(AMI Originate of a ChanSpy/whisper prompt), and an `EventSink` that publishes to MQTT.
Both are awaited from tasks, never from inside the debit loop, so a slow AMI cannot delay
other calls' debits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

from prepaid.errors import BadInput

WarnTarget = Literal["caller", "callee", "both"]
WARN_TARGETS: tuple[WarnTarget, ...] = ("caller", "callee", "both")

EndedBy = Literal["caller", "callee", "credit", "limit", "system"]
ENDED_BY: tuple[EndedBy, ...] = ("caller", "callee", "credit", "limit", "system")

# Event kinds published to the EventSink (MQTT topic callgate/<site>/events/prepaid/...).
EV_LOW_BALANCE = "prepaid.low_balance"
EV_WARNING = "prepaid.warning"
EV_CUT_OFF = "prepaid.cut_off"
EV_CARD_LOCKED = "prepaid.card_locked"
EV_CALL_ENDED = "prepaid.call_ended"
EV_RECHARGED = "prepaid.recharged"
EV_RECHARGE_FAILED = "prepaid.recharge_failed"


class CallControl(Protocol):
    async def cut_off(self, call_id: str) -> bool | None:
        """Hang the call up now: its credit is spent (AMI Hangup, cause 16). False when
        there was nothing left to hang up (the call had already ended), None if unknown."""
        ...

    async def play_warning(self, call_id: str, to: WarnTarget) -> None:
        """Play the 'credit is running out' prompt to the caller, the callee or both."""
        ...


class EventSink(Protocol):
    async def publish(self, kind: str, payload: Mapping[str, Any]) -> None: ...


class NoEvents:
    """An EventSink that drops everything (no MQTT configured)."""

    async def publish(self, kind: str, payload: Mapping[str, Any]) -> None:
        return None


def check_warn_target(value: str) -> WarnTarget:
    for t in WARN_TARGETS:
        if value == t:
            return t
    raise BadInput(f"warning target {value!r} must be caller, callee or both")

"""Prepaid debit sessions follow event ownership: one gateway debits the card calls of an
Asterisk, the one that owns its events (gateway/event_owner.py), and another takes them
over when it dies.

- The debit ticker's fence (prepaid.scheduler) is `EventOwnership.fencing_epoch` of the
  call's Asterisk: calls on an Asterisk owned elsewhere are not ticked, warned or cut off
  here, and every debit carries the owner's epoch, which debit.lua compares with the
  newest it has seen for that call, so a gateway that lost ownership (frozen, cut off)
  cannot debit after the new owner has, and no increment is paid twice.
- On gaining an Asterisk: adopt its live calls from Redis (`DebitScheduler.resume`: the
  time they ran unticked is debited at once, those whose money ran out are cut off), then
  settle the adopted calls Asterisk no longer has (they ended while nobody owned it).
- On losing it: stop ticking its calls without ending them (the new owner adopts them),
  unless ownership lapsed only because Redis cannot be reached: the calls then stay, and
  fail closed as on a lone gateway (see `fencing_epoch`).
- Calls whose Asterisk is unknown (sessions of an older version, an Asterisk no longer
  configured) are debited by a gateway that owns every Asterisk, unfenced.

With one gateway it owns every Asterisk once its AMI sessions are logged in, and debits
every call as before; answers seen in the second before its first claim are noted in the
session (answer_seen.lua) and adopted on the claim.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from gateway.event_owner import EventOwnership
from prepaid.scheduler import DebitScheduler

log = structlog.get_logger(__name__)


def owner_fence(owners: EventOwnership) -> Callable[[str], int | None]:
    def epoch_of(origin: str) -> int | None:
        if origin in owners.asterisks:
            return owners.fencing_epoch(origin)
        return 0 if owners.owns_all() else None

    return epoch_of


def follow_ownership(
    scheduler: DebitScheduler,
    owners: EventOwnership,
    after_adopt: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Connect before the scheduler's first `resume()`; `after_adopt` settles the adopted
    calls that Asterisk no longer has (the gateway's sweep)."""
    if not owners.asterisks:  # no AMI: nothing to own, every call as on one gateway
        return
    scheduler.use_fence(owner_fence(owners))

    async def gained(asterisk: str, epoch: int) -> None:
        try:
            report = await scheduler.resume()
            log.info("prepaid_adopted", asterisk=asterisk, epoch=epoch, live=report.live,
                     cut=report.cut, others=report.others)
            if after_adopt is not None:
                await after_adopt()
        except Exception as exc:  # the ticker goes on; the next gain or restart retries
            log.warning("prepaid_adopt_failed", asterisk=asterisk, error=repr(exc))

    def lost(asterisk: str, epoch: int) -> None:
        if owners.fencing_epoch(asterisk) is None:
            scheduler.disown(asterisk)

    owners.on_gain(gained)
    owners.on_loss(lost)


__all__ = ["follow_ownership", "owner_fence"]

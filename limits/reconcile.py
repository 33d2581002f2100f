"""Deciding, from the calls that are really up, which leases are wrong.

The gateway reads `CALLGATE_LEASE` from every live channel (after start-up and after an
AMI reconnect) and hands the set over; the truth is the channels, Redis is brought in line:

- a lease no live call holds is freed, unless it is younger than the snapshot (minus a
  grace for clock skew between gateways: it may belong to a call whose channel variable
  was not set yet) or belongs to an Asterisk server this gateway does not watch;
- a live call whose lease is gone is counted again under the same lease id, if the
  gateway can say what the call is (a `CallRequest`), unless it was released moments ago
  (the hangup raced the snapshot: a tombstone says so);
- then every counter is rebuilt from the leases that exist.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from limits.model import CallRequest, LeaseInfo


@dataclass(frozen=True, slots=True)
class ReconcilePlan:
    present: tuple[str, ...]  # live calls whose lease exists: renew them
    stale: tuple[str, ...]  # leases with no live call: free them
    missing: tuple[tuple[str, CallRequest | None], ...]  # live calls whose lease is gone
    skipped_young: int


def plan_reconcile(
    leases: Mapping[str, LeaseInfo],
    live: Mapping[str, CallRequest | None],
    *,
    origins: Collection[str] | None,
    created_before: float,
) -> ReconcilePlan:
    present = tuple(lease_id for lease_id in live if lease_id in leases)
    stale = []
    young = 0
    for lease_id, lease in leases.items():
        if lease_id in live:
            continue
        if origins is not None and lease.origin not in origins:
            continue
        if lease.created is None or lease.created >= created_before:
            young += 1
            continue
        stale.append(lease_id)
    missing = tuple((i, req) for i, req in live.items() if i not in leases)
    return ReconcilePlan(present, tuple(stale), missing, young)

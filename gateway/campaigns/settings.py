"""How the gateway hands dialer calls to Asterisk: the dialplan names it relies on.

The dialplan these names point at (see the report for an example):

- `dial_context`: `Local/<E.164>@callgate-dialer` dials the lead. The call was authorized
  before the Originate, so this context must not call the `authorize` hook again; the
  CALLGATE_* variables arrive as Originate variables (CALLGATE_LEASE included, so the
  gateway releases the slots on hang-up and reconciliation counts the call).
- `queue_context`: where the answered call goes, `Exten` = the campaign's agent queue. An
  answering-machine check, if any, runs here before `Queue()`: a call counts as answered by
  a person when it joins the queue (QueueCallerJoin).
- `apology_context`: an abandoned call is redirected to its `s` extension, which plays the
  apology prompt and hangs up. Empty: the call is simply hung up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DialerSettings:
    dial_context: str = "callgate-dialer"
    queue_context: str = "callgate-queue"
    apology_context: str = "callgate-apology"
    # Licence pool each dialer call holds, when the tenant has a size set for it ("" = none).
    seat_pool: str = "dialer_seat"
    tick_s: float = 1.0  # pacing tick, real seconds
    stats_interval_s: float = 1.0
    rescan_s: float = 5.0  # how often new campaigns are looked for
    # An originated call Asterisk never showed a channel for is given up after its dial
    # timeout plus this many seconds (of the dialer's clock).
    unseen_grace_s: float = 60.0

    def __post_init__(self) -> None:
        if self.tick_s <= 0 or self.stats_interval_s <= 0 or self.rescan_s <= 0:
            raise ValueError("dialer tick_s, stats_interval_s and rescan_s must be > 0")
        if not self.dial_context or not self.queue_context:
            raise ValueError("dialer dial_context and queue_context must be set")

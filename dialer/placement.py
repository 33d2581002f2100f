"""What the dialer needs from the gateway to make and end calls.

The dialer never talks AMI and never bypasses limits/: the gateway implements these
protocols over limits (acquire the tenant/trunk/licence slots, or refuse) and AMI
Originate. The dialer chooses the call id; the gateway must originate with
`ChannelId=<call_id>` so that Asterisk's `Linkedid` in queue events equals it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dialer.campaign import Campaign
from dialer.leads import Lead


@dataclass(frozen=True)
class PlaceResult:
    """Whether the call was handed to Asterisk.

    placed=False means nothing was dialled (limits refused, AMI down...): the lead goes
    back to the due list without an attempt counted, after `retry_after_s` (None: the
    runner's default). `reason` is a CALLGATE_REASON-style word (trunk_full, ...).
    """

    placed: bool
    reason: str = "ok"
    retry_after_s: float | None = None


class CallPlacer(Protocol):
    async def place(self, lead: Lead, campaign: Campaign, *, call_id: str,
                    agent: str | None = None) -> PlaceResult:
        """Originate a call to `lead.phone` (via `campaign.dial_target(...)`, caller id
        `campaign.caller_id`, timeout `campaign.dial_timeout_s`), after limits allow it.

        Predictive/progressive (agent=None): the answered call goes to
        `campaign.agent_queue`, whose wait must not exceed `campaign.connect_within_s`.
        Preview (agent = queue member interface): call the agent's phone first, then
        bridge the lead. Return once Asterisk accepted (or refused) the Originate; report
        what happens next through the runner's call_answered / call_failed / call_ended.
        """
        ...


class ApologyPlayer(Protocol):
    async def apologise(self, call_id: str, campaign: Campaign) -> None:
        """The answered call found no agent in time: play the apology prompt, hang up.

        Idempotent: the dialplan's queue timeout may already have done it.
        """
        ...

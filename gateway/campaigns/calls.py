"""The dialer's calls in flight, and the ordered notices the AMI side produces for them.

Every AMI callback that concerns a dialer call runs synchronously, right after the channel
table has applied the same event, and turns it into a notice on one queue; one worker
(the service's) hands the notices to the campaign runners in that order. So a call's
answer is never reported after its end, whatever the Redis latency of the runner.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

import structlog

from dialer.agents import AmiEvent
from dialer.leads import Outcome
from gateway.campaigns.outcomes import failure_outcome

log = structlog.get_logger(__name__)

_FAILED_ACTIONS_KEPT = 1000


@dataclass
class DialerCall:
    call_id: str  # = Originate ChannelId = Linkedid of every channel of the call
    tenant: str
    campaign_id: str
    lease: str
    asterisk: str
    placed_at: float  # dialer clock
    give_up_at: float  # dialer clock: no channel seen by then means it never started
    preview_agent: str = ""
    action_id: str = ""
    seen: bool = False  # the channel table saw one of its channels
    answered: bool = False  # a dialled channel went Up
    reached_queue: bool = False  # answered by a person (joined the agent queue)
    lead_answered: bool = False  # preview: the lead picked up
    lead_dial_status: str = ""  # preview: DialStatus of the agent channel's Dial
    originate_reason: int | None = None


@dataclass(frozen=True)
class Answered:
    tenant: str
    campaign_id: str
    call_id: str


@dataclass(frozen=True)
class Failed:
    tenant: str
    campaign_id: str
    call_id: str
    outcome: Outcome


@dataclass(frozen=True)
class Ended:
    tenant: str
    campaign_id: str
    call_id: str


@dataclass(frozen=True)
class Release:
    lease: str
    call_id: str


@dataclass(frozen=True)
class QueueActivity:
    event: AmiEvent
    queue: str


@dataclass(frozen=True)
class QueueSync:
    """QueueStatus items for one queue (start-up and after each AMI login)."""

    queue: str
    items: tuple[AmiEvent, ...]


Notice = Answered | Failed | Ended | Release | QueueActivity | QueueSync


@dataclass
class CallBook:
    notices: asyncio.Queue[Notice] = field(default_factory=asyncio.Queue)
    _calls: dict[str, DialerCall] = field(default_factory=dict)
    _by_action: dict[str, str] = field(default_factory=dict)
    # OriginateResponse failures that arrived before their Originate's answer was read.
    _failed_actions: OrderedDict[str, int] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self._calls)

    def calls(self) -> list[DialerCall]:
        return list(self._calls.values())

    def add(self, call: DialerCall) -> None:
        self._calls[call.call_id] = call

    def get(self, call_id: str) -> DialerCall | None:
        return self._calls.get(call_id)

    def forget(self, call_id: str) -> DialerCall | None:
        call = self._calls.pop(call_id, None)
        if call is not None and call.action_id:
            self._by_action.pop(call.action_id, None)
        return call

    def by_action(self, action_id: str) -> DialerCall | None:
        call_id = self._by_action.get(action_id)
        return self._calls.get(call_id) if call_id else None

    def bind_action(self, call_id: str, action_id: str) -> None:
        """The Originate was queued under `action_id`; apply a failure that overtook it."""
        call = self._calls.get(call_id)
        if call is None or not action_id:
            return
        call.action_id = action_id
        self._by_action[action_id] = call_id
        reason = self._failed_actions.pop(action_id, None)
        if reason is not None:
            self.originate_failed(call, reason)

    def originate_failed_unmatched(self, action_id: str, reason: int) -> None:
        self._failed_actions[action_id] = reason
        while len(self._failed_actions) > _FAILED_ACTIONS_KEPT:
            self._failed_actions.popitem(last=False)

    def originate_failed(self, call: DialerCall, reason: int) -> None:
        """OriginateResponse Failure: final now unless channels exist (their end decides)."""
        call.originate_reason = reason
        if call.seen:
            return
        self.finish(call, failure_outcome((), None, reason), why="originate_failed")

    def answered(self, call: DialerCall) -> None:
        self.notices.put_nowait(Answered(call.tenant, call.campaign_id, call.call_id))

    def finish(self, call: DialerCall, outcome: Outcome | None, *, why: str) -> None:
        """The call is over: outcome None = it reached a person (the runner judges how it
        went), else how it failed. Its lease is released here too (idempotent: the
        channel-table release of CallControl may come first)."""
        if self.forget(call.call_id) is None:
            return
        if outcome is None:
            self.notices.put_nowait(Ended(call.tenant, call.campaign_id, call.call_id))
        else:
            self.notices.put_nowait(Failed(call.tenant, call.campaign_id, call.call_id,
                                           outcome))
        self.notices.put_nowait(Release(call.lease, call.call_id))
        log.debug("dialer_call_over", call_id=call.call_id, tenant=call.tenant,
                  campaign=call.campaign_id, outcome=outcome.value if outcome else "reached",
                  why=why)

    def sweep(self, now: float) -> list[DialerCall]:
        """Give up on calls Asterisk never showed a channel for (AMI was down, lost event)."""
        stale = [c for c in self._calls.values() if not c.seen and now >= c.give_up_at]
        for call in stale:
            log.warning("dialer_call_never_seen", call_id=call.call_id, tenant=call.tenant,
                        campaign=call.campaign_id, asterisk=call.asterisk)
            self.finish(call, Outcome.FAILED, why="never_seen")
        return stale

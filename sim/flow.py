"""A call in progress: the channels it owns, and the interrupts (AMI Hangup,
AbsoluteTimeout) it handles at its next wait so the event order stays deterministic."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from sim.channels import Channel
from sim.originate import OriginateRequest

if TYPE_CHECKING:
    from sim.dialplan import Dialplan

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Interrupt:
    kind: str  # "hangup"
    channel: Channel
    cause: int | None
    source: str = "ami"  # ami | timeout | agi


@dataclass
class OriginateOutcome:
    reason: int
    channel: str
    uniqueid: str


class OriginateHandle:
    """What Originate started; `wait()` gives Asterisk's Reason (4 = answered)."""

    def __init__(self, req: OriginateRequest) -> None:
        self.req = req
        self._future: asyncio.Future[OriginateOutcome] = asyncio.get_running_loop().create_future()

    @property
    def done(self) -> bool:
        return self._future.done()

    def resolve(self, outcome: OriginateOutcome) -> None:
        if not self._future.done():
            self._future.set_result(outcome)

    async def wait(self) -> OriginateOutcome:
        return await self._future


class Flow:
    """One call's progress. Interrupts (AMI Hangup, AbsoluteTimeout) queue up and are
    handled at the flow's next wait, so event order stays deterministic."""

    def __init__(self, dp: Dialplan) -> None:
        self.dp = dp
        self.w = dp.world
        self._wake = asyncio.Event()
        self._pending: list[Interrupt] = []
        self.finished = False
        self.channels: list[Channel] = []
        self.ended = asyncio.Event()

    def own(self, *chans: Channel) -> None:
        for ch in chans:
            self.channels.append(ch)
            self.dp.owners[ch] = self

    def interrupt(self, it: Interrupt) -> None:
        if self.finished:
            return
        self._pending.append(it)
        self._wake.set()

    def take_pending(self) -> Interrupt | None:
        return self._pending.pop(0) if self._pending else None

    async def wait(self, deadlines: dict[str, float]) -> Interrupt | str:
        """The next interrupt, or the name of the first deadline (sim time) that passes."""
        while True:
            if self._pending:
                return self._pending.pop(0)
            delay: float | None = None
            name = ""
            if deadlines:
                name, at = min(deadlines.items(), key=lambda kv: kv[1])
                delay = self.w.clock.real_seconds(at - self.w.clock.now())
                if delay <= 0:
                    return name
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                if self._pending:
                    return self._pending.pop(0)
                return name

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.force_hangup_leftovers()
            self.release()
            self._after_release()
            self.dp.call_finished(self)

    async def _run(self) -> None:
        raise NotImplementedError

    def _after_release(self) -> None:
        """What a flow still owes once its channels are gone (e.g. an OriginateResponse)."""

    def force_hangup_leftovers(self) -> None:
        """Safety net: a flow never ends with one of its channels still up, so consumers
        always see one Hangup per Newchannel even if a sequence above has a gap."""
        for ch in self.channels:
            if not ch.hungup:
                log.warning("sim_channel_left_up", channel=ch.name)
                self.w.soft_hangup_request(ch, 16)
                self.w.hangup(ch, ch.requested_cause or 16)

    def release(self) -> None:
        self.finished = True
        self.ended.set()
        for ch in self.channels:
            if self.dp.owners.get(ch) is self:
                del self.dp.owners[ch]

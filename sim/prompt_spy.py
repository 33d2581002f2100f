"""Originate Local/warning@gw-prompt-player with Application ChanSpy: a prompt played into
a bridged call on demand (g3 barge `B`, g4/g5 whisper `w`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.channels import UP, Channel
from sim.flow import Flow, Interrupt, OriginateHandle

if TYPE_CHECKING:
    from sim.dialplan import Dialplan


class PromptSpy(Flow):
    """Originate Local/warning@gw-prompt-player + Application ChanSpy (g3, g4, g5)."""

    def __init__(
        self,
        dp: Dialplan,
        origin: OriginateHandle,
        p1: Channel,
        p2: Channel,
        spyee_name: str,
        options: str,
    ) -> None:
        super().__init__(dp)
        self.origin = origin
        self.p1, self.p2 = p1, p2
        self.spyee_name = spyee_name
        self.options = options
        self.own(p1, p2)

    def _hangup(self, ch: Channel, cause: int) -> None:
        if not ch.hungup:
            self.w.hangup(ch, cause)
            if ch.device:
                self.w.device_state(ch.device, "NOT_INUSE")

    def _bridge_pair(self) -> list[Channel]:
        spyee = self.w.find_channel(self.spyee_name)
        if spyee is None or not spyee.bridge_id:
            return []
        br = self.w.bridges.get(spyee.bridge_id)
        return list(br.channels) if br else []

    def _reannounce(self, times: int, stop: Channel | None = None) -> None:
        """Each audiohook change re-evaluates the bridge, which re-sets BRIDGEPEER on both
        members (first-entered first); ChanSpyStop lands inside the last pair (g3, g4)."""
        pair = self._bridge_pair()
        if len(pair) != 2:
            if stop is not None:
                self._spy_stop(stop)
            return
        first, second = pair
        for n in range(times):
            self.w.varset(first, "BRIDGEPEER", second.name)
            if stop is not None and n == times - 1:
                self._spy_stop(stop)
            self.w.varset(second, "BRIDGEPEER", first.name)

    def _spy_stop(self, spyee: Channel) -> None:
        self.w.emit("ChanSpyStop", [*self.p1.fields("Spyer"), *spyee.fields("Spyee")])

    def _after_release(self) -> None:
        if not self.origin.done:
            self.dp.originate_response(self.origin, 0, None)

    async def _run(self) -> None:
        w, p1, p2 = self.w, self.p1, self.p2
        w.newexten(p2, 1, "Answer", "")
        w.newstate(p2, UP)
        w.newstate(p1, UP)
        w.dial_end(None, p1, "ANSWER")
        self.dp.originate_response(self.origin, 4, p1)
        w.device_state(p1.device, "INUSE")
        w.device_state(p2.device, "INUSE")
        p1.cdr_last_app, p1.cdr_last_data = "ChanSpy", self.origin.req.data
        spyee = w.find_channel(self.spyee_name)
        barge = "B" in self.options
        if await self._sleep(0.1):
            return
        spying = spyee is not None
        if spyee is not None:
            w.emit("ChanSpyStart", [*p1.fields("Spyer"), *spyee.fields("Spyee")])
            self._reannounce(1)
        if await self._sleep(0.04):
            return
        w.newexten(p2, 2, "Wait", "0.3")
        if await self._sleep(0.3):
            return
        w.newexten(p2, 3, "Playback", "beep&vm-goodbye")
        if barge and spying:
            self._reannounce(1)
        if await self._sleep(1.32):
            return
        w.varset(p2, "PLAYBACKSTATUS", "SUCCESS")
        w.newexten(p2, 4, "Hangup", "")
        w.soft_hangup_request(p2, 16)
        w.hangup_request(p1, 16)
        self._hangup(p2, 16)
        w.cdr(p2)
        spyee = w.find_channel(self.spyee_name)
        if spying and spyee is not None:
            self._reannounce(3 if barge else 2, stop=spyee)
        self._hangup(p1, 16)
        w.cdr(p1)
        self.finished = True

    async def _sleep(self, secs: float) -> bool:
        """True if the prompt call was cut meanwhile."""
        end = self.w.clock.now() + secs
        while True:
            got = await self.wait({"t": end})
            if got == "t":
                return False
            if isinstance(got, Interrupt) and not got.channel.hungup:
                cause = got.cause if got.cause is not None else 16
                w, p1, p2 = self.w, self.p1, self.p2
                w.soft_hangup_request(p2, 16)
                w.hangup_request(p1, cause)
                self._hangup(p2, cause)
                self._hangup(p1, cause)
                w.cdr(p2)
                w.cdr(p1)
                self.finished = True
                return True

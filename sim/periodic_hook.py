"""PERIODIC_HOOK(context,exten,interval) read over AMI Getvar with live_dangerously on (g2).

The read attaches an audiohook to the channel and answers the hook id ("0", "1", ...). On
the next audio frame, then every `interval` seconds while enabled, the hook originates
`Local/hook@__func_periodic_hook_context__` whose `;2` ChanSpies the hooked channel (qEB:
barge, both parties hear) while `;1` runs `context,exten` (Answer, Playback, Hangup, like
the recordings' gw-prompts). `Setvar PERIODIC_HOOK(<id>)=off|on` disables / re-enables it
without firing (the interval has not elapsed). The hook stops with its channel.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from sim.channels import UP, Channel
from sim.flow import Flow, Interrupt
from sim.originate import OriginateRequest
from sim.world import World

if TYPE_CHECKING:
    from sim.dialplan import Dialplan

log = structlog.get_logger(__name__)

HOOK_CONTEXT = "__func_periodic_hook_context__"
PROMPT = "beep&vm-goodbye"
FIRST_FRAME = 0.017  # sim seconds from the read to the next audio frame (g2)
SPY_ATTACH = 0.1  # ChanSpy start-up before ChanSpyStart
PROMPT_LENGTH = 1.322  # Playback(beep&vm-goodbye)
SPY_DETACH = 0.017  # ChanSpy noticing its ;1 has gone
_TRUE = {"yes", "true", "y", "t", "1", "on"}
_FALSE = {"no", "false", "n", "f", "0", "off"}


@dataclass(eq=False)
class Hook:
    hook_id: str
    channel: Channel
    context: str
    exten: str
    interval: float
    enabled: bool = True
    last_fire: float | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class PeriodicHooks:
    """The hooks installed on channels, and the task that fires each one."""

    def __init__(self, dp: Dialplan) -> None:
        self.dp = dp
        self.w = dp.world
        self._next_id = 0
        self.hooks: dict[str, Hook] = {}

    def read(self, ch: Channel | None, args: str) -> str:
        """The function's read: install a hook and answer its id ("" when refused)."""
        parts = [p.strip() for p in args.split(",")]
        if ch is None or len(parts) < 3 or not parts[0] or not parts[1]:
            log.warning("sim_periodic_hook_bad_args", args=args)
            return ""
        try:
            interval = float(parts[2])
        except ValueError:
            log.warning("sim_periodic_hook_bad_interval", args=args)
            return ""
        if interval <= 0:
            log.warning("sim_periodic_hook_bad_interval", args=args)
            return ""
        hook = Hook(str(self._next_id), ch, parts[0], parts[1], interval)
        self._next_id += 1
        self.hooks[hook.hook_id] = hook
        self.dp.hangup_hooks.setdefault(ch, []).append(lambda _ch, _cause: hook.changed.set())
        self.w.spawn(self._run(hook))
        return hook.hook_id

    def write(self, ch: Channel | None, hook_id: str, value: str) -> bool:
        """`PERIODIC_HOOK(<id>)=on|off`; False (Setvar's `Variable not set`) for an unknown
        hook or a value that is neither true nor false."""
        hook = self.hooks.get(hook_id.strip())
        word = value.strip().lower()
        if hook is None or hook.channel is not ch or word not in _TRUE | _FALSE:
            log.warning("sim_periodic_hook_bad_write", hook_id=hook_id, value=value)
            return False
        hook.enabled = word in _TRUE
        hook.changed.set()
        return True

    async def _run(self, hook: Hook) -> None:
        ch = hook.channel
        try:
            # the new audiohook makes the bridge re-evaluate its members (g2)
            reannounce_peers(self.w, ch, 1)
            due = self.w.clock.now() + FIRST_FRAME
            while not ch.hungup:
                if hook.enabled and self.w.clock.now() >= due:
                    hook.last_fire = self.w.clock.now()
                    due = hook.last_fire + hook.interval
                    self._fire(hook)
                    continue
                hook.changed.clear()
                timeout = None
                if hook.enabled:
                    timeout = self.w.clock.real_seconds(due - self.w.clock.now())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hook.changed.wait(), timeout)
        finally:
            self.hooks.pop(hook.hook_id, None)

    def _fire(self, hook: Hook) -> None:
        dp = self.dp
        req = OriginateRequest(
            channel=f"Local/hook@{HOOK_CONTEXT}",
            context=hook.context,
            exten=hook.exten,
            variables=(("HOOK_ID", hook.hook_id), ("HOOK_CHANNEL", hook.channel.name)),
            is_async=False,
        )
        p1, p2 = dp.local_setup(req, "hook", HOOK_CONTEXT)
        player = HookPlayer(dp, p1, p2, hook)
        dp.start_flow(player, player.run())


def reannounce_peers(w: World, spyee: Channel, times: int) -> None:
    """An audiohook change re-sets BRIDGEPEER on both bridge members, first-entered first."""
    br = w.bridges.get(spyee.bridge_id) if spyee.bridge_id else None
    if br is None or len(br.channels) != 2:
        return
    first, second = br.channels
    for _ in range(times):
        w.varset(first, "BRIDGEPEER", second.name)
        w.varset(second, "BRIDGEPEER", first.name)


class HookPlayer(Flow):
    """One firing: `;2` runs __func_periodic_hook_context__ (ChanSpy qEB on the hooked
    channel), `;1` runs the hook's context (Answer, Playback, Hangup), in g2's order."""

    def __init__(self, dp: Dialplan, p1: Channel, p2: Channel, hook: Hook) -> None:
        super().__init__(dp)
        self.p1, self.p2 = p1, p2
        self.hook = hook
        self.spying = False
        self.own(p1, p2)
        spyee = hook.channel
        dp.hangup_hooks.setdefault(spyee, []).append(self._spyee_gone)

    def _spyee_gone(self, ch: Channel, cause: int) -> None:
        self.interrupt(Interrupt("hangup", self.p2, 16, "spyee"))

    async def _run(self) -> None:
        w, p1, p2, hook = self.w, self.p1, self.p2, self.hook
        target = hook.channel.name
        group = f"{target}{hook.hook_id}"
        w.newexten(p2, 1, "Set", f"EncodedChannel={target}")
        w.varset(p2, "EncodedChannel", target)
        w.newexten(p2, 2, "Set", f"GROUP_NAME={group}")
        w.varset(p2, "GROUP_NAME", group)
        w.newexten(p2, 3, "Set", f"GROUP(periodic-hook)={group}")
        w.newexten(p2, 4, "ExecIf", "0?Hangup()")
        w.newexten(p2, 5, "Set", f"ChannelToSpy={target}")
        w.varset(p2, "ChannelToSpy", target)
        w.newexten(p2, 6, "ChanSpy", f"{target},qEB")
        w.newstate(p1, UP)
        w.dial_end(None, p1, "ANSWER")
        p1.context, p1.exten = hook.context, hook.exten
        w.newexten(p1, 1, "Answer", "")
        w.newexten(p1, 2, "Playback", PROMPT)
        w.device_state(p1.device, "INUSE")
        w.newstate(p2, UP)
        w.device_state(p2.device, "INUSE")
        if await self._sleep(SPY_ATTACH):
            return
        spyee = w.find_channel(target)
        if spyee is not None:
            self.spying = True
            w.emit("ChanSpyStart", [*p2.fields("Spyer"), *spyee.fields("Spyee")])
            reannounce_peers(w, spyee, 1)
        if await self._sleep(0.02):
            return
        if spyee is not None and not spyee.hungup:
            reannounce_peers(w, spyee, 1)  # the barge audio joins
        if await self._sleep(PROMPT_LENGTH - SPY_ATTACH - 0.02):
            return
        w.varset(p1, "PLAYBACKSTATUS", "SUCCESS")
        w.newexten(p1, 3, "Hangup", "")
        w.cdr(p1)
        w.soft_hangup_request(p1, 16)
        w.hangup_request(p2, 16)
        self._gone(p1, 16)
        if await self._sleep(SPY_DETACH):
            return
        spyee = w.find_channel(target)
        if self.spying and spyee is not None:
            reannounce_peers(w, spyee, 2)
            self._spy_stop(spyee)
            reannounce_peers(w, spyee, 1)
        w.soft_hangup_request(p2, 16)
        w.cdr(p2)
        self._gone(p2, 16)
        self.finished = True

    def _gone(self, ch: Channel, cause: int) -> None:
        if not ch.hungup:
            self.w.hangup(ch, cause)
            self.w.device_state(ch.device, "NOT_INUSE")

    def _spy_stop(self, spyee: Channel | None) -> None:
        if not self.spying:
            return
        self.spying = False
        spyee_fields = spyee.fields("Spyee") if spyee is not None else []
        self.w.emit("ChanSpyStop", [*self.p2.fields("Spyer"), *spyee_fields])

    async def _sleep(self, secs: float) -> bool:
        """True if the firing was cut meanwhile (AMI Hangup of a leg, the spyee gone)."""
        end = self.w.clock.now() + secs
        while True:
            got = await self.wait({"t": end})
            if got == "t":
                return False
            if isinstance(got, Interrupt) and not got.channel.hungup:
                self._cut(got)
                return True

    def _cut(self, it: Interrupt) -> None:
        w, p1, p2 = self.w, self.p1, self.p2
        cause = it.cause if it.cause is not None else 16
        if it.channel is p2:  # ChanSpy ended (spyee gone, or ;2 hung up): ;2 goes first
            self._spy_stop(w.find_channel(self.hook.channel.name))
            w.soft_hangup_request(p2, 16)
            if not p1.hungup:
                w.hangup_request(p1, cause)
            self._gone(p2, cause)
            w.cdr(p2)
            if not p1.hungup:
                w.soft_hangup_request(p1, 16)
                self._gone(p1, cause)
                w.cdr(p1)
        else:
            if not p1.hungup:
                w.soft_hangup_request(p1, 16)
                w.hangup_request(p2, cause)
                self._gone(p1, cause)
                w.cdr(p1)
            self._spy_stop(w.find_channel(self.hook.channel.name))
            w.soft_hangup_request(p2, 16)
            self._gone(p2, cause)
            w.cdr(p2)
        self.finished = True

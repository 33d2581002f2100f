"""A call through a gateway context: FastAGI authorize, then Dial to the far end.

Every step emits the AMI events of the real thing, in the order of the reference recordings
(b1 answered, c1 no answer, c2 originate timeout, c3 busy, c6 AGI hangup, d2 timeout
mid-call, e2 hangup during AGI); other interleavings seen in the recordings are the same
per-channel sequences.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import TYPE_CHECKING

import structlog

from sim.agi_link import RESULT_TEXT, AgiTarget, ObservedAgiCall, split_app_data
from sim.channels import BUSY, RINGING, UP, Bridge, Channel
from sim.dialplan_config import DIAL_VARS, MONITOR_DIR, ContextConfig
from sim.farend import Step
from sim.flow import Flow, Interrupt, OriginateHandle
from sim.functions import evaluate, substitute
from sim.rtp_stats import RTP_QOS

if TYPE_CHECKING:
    from sim.dialplan import Dialplan

log = structlog.get_logger(__name__)


ANSWER_GOSUB = "callgate-answered"  # the Dial U() subroutine of the example dialplan

class GatewayCall(Flow):
    """A call running a gateway context on `g2`, optionally the `;2` of an originated Local
    pair whose `;1` (`g1`) stands in for the caller leg."""

    def __init__(
        self,
        dp: Dialplan,
        ctx: ContextConfig,
        exten: str,
        g2: Channel,
        g1: Channel | None = None,
        origin: OriginateHandle | None = None,
    ) -> None:
        super().__init__(dp)
        self.ctx = ctx
        self.exten = exten
        self.g1 = g1
        self.g2 = g2
        self.origin = origin
        self.c1: Channel | None = None
        self.c2: Channel | None = None
        self.bridge: Bridge | None = None
        self.dial_started = 0.0
        self.answered = False
        self.g1_gone = False
        self.dial_status = ""
        self.orig_deadline: float | None = None
        self.agi: ObservedAgiCall | None = None
        self.agi_killed_by = ""  # "ami" (e2) or "agi" (c6)
        self.outcome = ""  # what the far end did, for stats
        self.dialed = ""
        own = [g2] if g1 is None else [g1, g2]
        self.own(*own)
        if origin is not None:
            self.orig_deadline = self.w.clock.now() + origin.req.timeout_ms / 1000.0

    # ---- helpers ------------------------------------------------------------------------

    def var(self, ch: Channel, name: str) -> str:
        return ch.variables.get(name, "")

    def _hangup(self, ch: Channel | None, cause: int) -> None:
        if ch is None or ch.hungup:
            return
        self.dp.before_hangup(ch, cause)
        self._rtp_stats(ch)
        self.w.hangup(ch, cause)
        if ch.device:
            self.w.device_state(ch.device, "NOT_INUSE")

    def _device_inuse(self, ch: Channel) -> None:
        if ch.device:
            self.w.device_state(ch.device, "INUSE")

    def _orig_respond(self, reason: int, ok_channel: Channel | None = None) -> None:
        if self.origin is None or self.origin.done:
            return
        self.dp.originate_response(self.origin, reason, ok_channel)

    def _pending_origin(self) -> bool:
        return self.origin is not None and not self.origin.done

    def _deadlines(self, extra: dict[str, float]) -> dict[str, float]:
        d = dict(extra)
        if self.orig_deadline is not None and self._pending_origin():
            d["originate_timeout"] = self.orig_deadline
        return d

    # ---- the run -------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sim_call_failed", channel=self.g2.name)
        finally:
            self.force_hangup_leftovers()
            self.release()
            self._orig_respond(0)
            self.dp.call_finished(self)

    async def _run(self) -> None:
        g2 = self.g2
        recording = self.ctx.style == "recording"
        prio = 1
        if recording:
            cid = evaluate(self.w, g2, "CALLERID(num)")
            self.w.newexten(
                g2,
                1,
                "NoOp",
                f"gw-out: call {self.var(g2, 'GW_CALL_ID')} to {self.exten} from {cid}",
            )
            prio = 2
        if self.ctx.agi:
            data = substitute(self.w, g2, self.ctx.agi)
            self.w.newexten(g2, prio, "AGI", data)
            status = await self._run_agi(data)
            if self.finished or g2.hungup:
                return
            if status == "HANGUP":
                self._after_agi_hangup()
                return
            self.w.varset(g2, "AGISTATUS", status)
        else:
            # No AGI (the dialer's context): CALLGATE_* came with the Originate.
            status = "SUCCESS"
        if recording:
            await self._recording_dialplan(status)
        else:
            await self._callgate_dialplan()

    # ---- AGI -----------------------------------------------------------------------------

    async def _run_agi(self, data: str) -> str:
        g2 = self.g2
        url, args = split_app_data(data)
        try:
            target = AgiTarget.parse(url)
        except ValueError:
            log.warning("sim_agi_bad_url", url=url)
            return "FAILURE"
        env = self._agi_env(target)
        variables = dict(g2.variables)
        hooks = _AgiEvents(self)
        agi = ObservedAgiCall(target, env, variables, args=args, hooks=hooks)
        self.agi = agi
        task = asyncio.ensure_future(agi.run())
        try:
            while not task.done():
                waiter = asyncio.ensure_future(self.wait(self._deadlines({})))
                done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if waiter not in done:
                    waiter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await waiter
                    break
                got = waiter.result()
                if got == "originate_timeout":
                    self._g1_gone_during_agi(
                        19 if self.g1 and self.g1.state == RINGING else 0, timeout=True
                    )
                    agi.hangup()
                elif isinstance(got, Interrupt):
                    self._agi_interrupt(got, agi)
            outcome = await task
        finally:
            if not task.done():
                task.cancel()
        self.agi = None
        # a hangup that raced with the script's close still counts
        return "HANGUP" if agi.dead else outcome.status

    def _agi_interrupt(self, it: Interrupt, agi: ObservedAgiCall) -> None:
        if it.channel is self.g2:
            if not agi.dead:
                self.agi_killed_by = self.agi_killed_by or "ami"
                self.g2.requested_cause = it.cause
                agi.hangup()
        elif it.channel is self.g1 and not self.g1_gone:
            self._g1_gone_during_agi(it.cause if it.cause is not None else 16, timeout=False)
            agi.hangup()

    def _agi_env(self, target: AgiTarget) -> dict[str, str]:
        g2 = self.g2
        num = evaluate(self.w, g2, "CALLERID(num)") or "unknown"
        name = evaluate(self.w, g2, "CALLERID(name)") or "unknown"
        return {
            "agi_request": target.url,
            "agi_channel": g2.name,
            "agi_language": g2.language,
            "agi_type": g2.tech,
            "agi_uniqueid": g2.uniqueid,
            "agi_callerid": num,
            "agi_calleridname": name,
            "agi_dnid": g2.dnid or "unknown",
            "agi_context": g2.context,
            "agi_extension": g2.exten,
            "agi_priority": str(g2.priority),
            "agi_accountcode": g2.accountcode,
            "agi_threadid": str(140383142627008 + self.w.rng.randrange(1 << 20) * 4096),
        }

    def _g1_gone_during_agi(self, cause: int, *, timeout: bool) -> None:
        """The caller leg went away while AGI() ran (AMI Hangup of ;1, Originate timeout)."""
        g1 = self.g1
        if g1 is None or self.g1_gone:
            return
        self.g1_gone = True
        self.g2.requested_cause = cause
        self.w.hangup_request(self.g2, cause)
        self._orig_respond(3 if g1.state == RINGING else 0)
        self._hangup(g1, cause)

    def _after_agi_hangup(self) -> None:
        """AGI() ended on a dead channel: e2 (AMI Hangup) or c6 (AGI HANGUP) order."""
        g1, g2 = self.g1, self.g2
        cause = g2.requested_cause if g2.requested_cause is not None else 0
        self.w.varset(g2, "AGISTATUS", "HANGUP")
        if self.g1_gone or g1 is None:
            self.w.soft_hangup_request(g2, 16)
            self._hangup(g2, cause)
            self.finished = True
            return
        if self.agi_killed_by == "agi":  # c6
            self.w.soft_hangup_request(g2, 16)
            self.w.hangup_request(g1, cause)
            self.w.dial_end(None, g1, "NOANSWER")
            self._hangup(g1, cause)  # never answered: no pbx, no SoftHangupRequest
            self._orig_respond(0)
            self._hangup(g2, cause)
        else:  # e2
            self._orig_respond(0)
            self.w.soft_hangup_request(g2, 16)
            self.w.hangup_request(g1, cause)
            self._hangup(g2, cause)
            self.w.dial_end(None, g1, "NOANSWER")
            self._hangup(g1, cause)  # never answered: no pbx, no SoftHangupRequest
        self.finished = True

    # ---- after AGI: the two dialplan styles ---------------------------------------------

    async def _recording_dialplan(self, status: str) -> None:
        g2 = self.g2
        auth = self.var(g2, "GW_AUTH")
        self.w.newexten(g2, 3, "NoOp", f"AGISTATUS={status} GW_AUTH={auth}")
        denied = auth != "OK"
        self.w.newexten(g2, 4, "GotoIf", f"{1 if denied else 0}?denied")
        if denied:
            self.w.newexten(g2, 10, "Hangup", "21")
            self._denied(21)
            return
        call_id = self.var(g2, "GW_CALL_ID")
        record = self.var(g2, "GW_RECORD")
        self.w.newexten(g2, 5, "Set", f"__GW_CALL_ID={call_id}")
        self.w.varset(g2, "__GW_CALL_ID", call_id)
        self.w.newexten(g2, 6, "Set", f"__GW_RECORD={record}")
        self.w.varset(g2, "__GW_RECORD", record)
        timeout_s = self.var(g2, "GW_DIAL_TIMEOUT") or str(self.ctx.dial_timeout)
        opts = self.var(g2, "GW_DIAL_OPTS")
        data = f"Local/{self.exten}@{self.ctx.callee_context},{timeout_s},{opts}"
        self.w.newexten(g2, 7, "Dial", data)
        await self._dial(_int(timeout_s, self.ctx.dial_timeout), _limit_ms(opts))
        if self.finished or g2.hungup:
            return
        hc = g2.hangup_cause
        self.w.newexten(
            g2, 8, "NoOp", f"DIALSTATUS={self.dial_status} HANGUPCAUSE={hc} ANSWEREDTIME="
        )
        self.w.newexten(g2, 9, "Hangup", "")
        self._after_failed_dial_hangup(16)

    async def _callgate_dialplan(self) -> None:
        g2 = self.g2
        result = self.var(g2, "CALLGATE_RESULT")
        denied = result != "ALLOW"
        self.w.newexten(g2, 2, "GotoIf", f"{1 if denied else 0}?deny")
        if denied:
            cause = _int(self.var(g2, "CALLGATE_CAUSE"), 21) or 21
            self.w.newexten(g2, 5, "Hangup", str(cause))
            self._denied(cause)
            return
        maxsec = _int(self.var(g2, "CALLGATE_MAXSEC"), 0)
        prio = 3
        if self.ctx.timeout_margin is not None:  # TIMEOUT(absolute), no L()
            absolute = maxsec + self.ctx.timeout_margin if maxsec > 0 else 0
            self.w.newexten(g2, prio, "ExecIf",
                            f"{1 if absolute else 0}?Set(TIMEOUT(absolute)={absolute})")
            if absolute:
                self.dp.absolute_timeout(g2, absolute)
            maxsec, prio = 0, prio + 1
        maxsec += self.ctx.maxsec_margin if maxsec > 0 else 0
        opts = f"L({maxsec * 1000})" if maxsec > 0 else ""
        if self.ctx.answer_sets:
            u = f"U({ANSWER_GOSUB}^{self.var(g2, 'CALLGATE_LEASE') or ''})"
            opts = f"{opts}{u}"
        timeout = self.ctx.dial_timeout
        data = f"Local/{self.exten}@{self.ctx.callee_context},{timeout},{opts}"
        self.w.newexten(g2, prio, "Dial", data)
        await self._dial(timeout, maxsec * 1000 if maxsec > 0 else None)
        if self.finished or g2.hungup:
            return
        self.w.newexten(g2, prio + 1, "Hangup", "")
        self._after_failed_dial_hangup(16)

    def _denied(self, cause: int) -> None:
        """Hangup(cause) before any Dial."""
        g1, g2 = self.g1, self.g2
        self.outcome = "denied"
        self.w.soft_hangup_request(g2, 16)
        if g1 is not None and not self.g1_gone:
            self.w.hangup_request(g1, cause)
        self._hangup(g2, cause)
        if g1 is not None and not self.g1_gone:
            self.w.dial_end(None, g1, "NOANSWER")
            self._orig_respond(0)
            self._hangup(g1, cause)
        self.finished = True

    def _after_failed_dial_hangup(self, cause: int) -> None:
        """Hangup() after a Dial that did not connect (c1, c3)."""
        g1, g2 = self.g1, self.g2
        self.w.soft_hangup_request(g2, 16)
        if g1 is not None and not self.g1_gone:
            self.w.varset(g1, "CHANLOCALSTATUS", self.dial_status)
            self.w.hangup_request(g1, cause)
        self._hangup(g2, cause)
        self.w.cdr(g2, _disposition(self.dial_status))
        if g1 is not None and not self.g1_gone:
            self.w.dial_end(None, g1, "NOANSWER")
            self._orig_respond(0)
            self._hangup(g1, cause)
        self.finished = True

    # ---- Dial ----------------------------------------------------------------------------

    async def _dial(self, timeout: int, limit_ms: int | None) -> None:
        g2 = self.g2
        w = self.w
        for name in DIAL_VARS:
            w.varset(g2, name, "")
        callee_ctx = self.ctx.callee_context
        c1, c2 = w.new_local_pair(self.exten, callee_ctx, linkedid=g2.linkedid)
        self.c1, self.c2 = c1, c2
        self.own(c1, c2)
        w.newchannel(c1)
        w.newchannel(c2)
        self.dialed = f"{self.exten}@{callee_ctx}"
        inherited = _inheritable(g2)
        w.varset(c1, "DIALEDPEERNUMBER", self.dialed)
        for k, v in inherited:
            w.varset(c1, k, v)
        c1.cid_num, c1.cid_name = self.exten, g2.cid_name
        c1.conn_num, c1.conn_name = g2.cid_num, g2.cid_name
        w.newexten(c1, 1, "AppDial", "(Outgoing Line)")
        w.newcallerid(c1)
        w.newconnectedline(c1)
        w.varset(c2, "DIALEDPEERNUMBER", self.dialed)
        for k, v in inherited:
            w.varset(c2, k, v)
        c2.cid_num, c2.cid_name = g2.cid_num, g2.cid_name
        c2.conn_num, c2.conn_name = self.exten, g2.cid_name
        w.newcallerid(c2)
        w.newconnectedline(c2)
        w.local_bridge(c1, c2)
        w.dial_begin(g2, c1, self.dialed)
        g2.cdr_dest_channel = c1.name
        g2.cdr_frozen = True
        self.dial_started = w.clock.now()
        dial_deadline = self.dial_started + timeout
        steps = self.dp.config.far_end.plan(self.exten, w.rng)
        await self._callee(steps, dial_deadline, limit_ms)

    async def _callee(
        self, steps: tuple[Step, ...], dial_deadline: float, limit_ms: int | None
    ) -> None:
        """Run the far end's steps on c2, reacting to everything else meanwhile."""
        c2 = self.c2
        assert c2 is not None
        w = self.w
        limit_at: float | None = None
        prio = 0
        for app, data in steps:
            prio += 1
            if self.finished:
                return
            if app == "Answer":
                w.newexten(c2, prio, "Answer", "")
                if not self.answered:
                    self._answer()
                    if limit_ms is not None:
                        limit_at = w.clock.now() + limit_ms / 1000.0
                    if await self._settle(limit_at):
                        return
            elif app == "Ringing":
                w.newexten(c2, prio, "Ringing", "")
                if not self.answered:
                    self._ringing()
            elif app in ("Wait", "Echo"):
                w.newexten(c2, prio, app, data)
                secs = float(data) if app == "Wait" and data else 600.0
                if await self._wait_step(secs, dial_deadline, limit_at):
                    return
            elif app == "Hangup":
                w.newexten(c2, prio, "Hangup", data)
                cause = _int(data, 16) or 16
                self._callee_hangs_up(cause)
                return
            elif app in ("Busy", "Congestion"):
                w.newexten(c2, prio, app, data)
                if self.answered:
                    continue
                self._busy(app == "Busy")
                return
            elif app == "ExecIf":
                record = c2.variables.get("GW_RECORD", "")
                text = data.replace("$RECORD", "1" if record else "0").replace("$GW_RECORD", record)
                w.newexten(c2, prio, "ExecIf", text)
                if record:
                    self._mixmonitor(c2, f"{MONITOR_DIR}/{record}-callee.wav")
            else:
                w.newexten(c2, prio, app, data)
        if not self.finished:
            self._callee_hangs_up(16)

    async def _settle(self, limit_at: float | None) -> bool:
        """The callee's Answer() returns a moment after the bridge forms."""
        settle = self.w.clock.now() + self.dp.config.answer_settle
        return await self._wait_step(0, settle, limit_at, settle_only=True)

    async def _wait_step(
        self,
        secs: float,
        dial_deadline: float,
        limit_at: float | None,
        *,
        settle_only: bool = False,
    ) -> bool:
        """Wait in c2's current step; True when the call ended meanwhile."""
        w = self.w
        step_end = dial_deadline if settle_only else w.clock.now() + secs
        while True:
            deadlines = {"step": step_end}
            if not self.answered:
                deadlines["dial_timeout"] = dial_deadline
            if limit_at is not None and self.answered:
                deadlines["limit"] = limit_at
            got = await self.wait(self._deadlines(deadlines))
            if got == "step":
                return False
            if got == "dial_timeout":
                self._dial_timeout()
                return True
            if got == "limit":
                self._teardown_bridged("g2", 16)
                return True
            if got == "originate_timeout":
                g1 = self.g1
                self._caller_cancel(19 if g1 is not None and g1.state == RINGING else 0, True)
                return True
            if isinstance(got, Interrupt) and self._dial_interrupt(got):
                return True

    def _dial_interrupt(self, it: Interrupt) -> bool:
        ch = it.channel
        if ch.hungup:
            return False
        if it.source == "caller" and ch.tech != "Local":
            # a BYE from the calling phone/trunk shows as HangupRequest first (h2)
            self.w.hangup_request(ch, it.cause if it.cause is not None else 16)
        if self.answered:
            role = self._role(ch)
            if role:
                self._teardown_bridged(role, it.cause if it.cause is not None else 16)
                return True
            return False
        cause = it.cause if it.cause is not None else 16
        if ch is self.g1:
            self._caller_cancel(cause, False)
        elif ch is self.g2:
            self._g2_cancel(cause)
        elif ch is self.c1 or ch is self.c2:
            self._callee_gone(ch, cause)
        else:
            return False
        return True

    def _role(self, ch: Channel) -> str:
        for role in ("g1", "g2", "c1", "c2"):
            if getattr(self, role) is ch:
                return role
        return ""

    # ---- dial progress sequences --------------------------------------------------------

    def _ringing(self) -> None:
        """c1: the callee rings."""
        g1, g2, c1 = self.g1, self.g2, self.c1
        assert c1 is not None
        w = self.w
        w.newstate(c1, RINGING)
        if g1 is not None and not self.g1_gone:
            w.newstate(g1, RINGING)
        self._device_inuse(c1)
        ms = int((w.clock.now() - self.dial_started) * 1000)
        w.varset(g2, "RINGTIME", str(ms // 1000))
        w.varset(g2, "RINGTIME_MS", str(ms))
        w.dial_state(g2, c1, "RINGING")
        if g1 is not None and not self.g1_gone:
            self._device_inuse(g1)
            w.dial_state(None, g1, "RINGING")

    def _answer(self) -> None:
        """b1: the callee answers, the caller leg is answered, both join a bridge."""
        g1, g2, c1, c2 = self.g1, self.g2, self.c1, self.c2
        assert c1 is not None and c2 is not None
        w = self.w
        self.answered = True
        self.outcome = "answered"
        w.newstate(c2, UP)
        self._device_inuse(c2)
        w.newstate(c1, UP)
        self._device_inuse(c1)
        w.varset(g2, "DIALSTATUS", "ANSWER")
        w.varset(g2, "DIALEDPEERNAME", c1.name)
        w.varset(g2, "DIALEDPEERNUMBER", self.dialed)
        self.dial_status = "ANSWER"
        c1.exten = ""
        w.dial_end(g2, c1, "ANSWER")
        if g1 is not None:
            w.newstate(g1, UP)
        if g2.state != UP:  # an originated phone (h3) was answered before the dialplan ran
            w.newstate(g2, UP)
        if g1 is not None:
            self._device_inuse(g1)
            self._device_inuse(g2)
        if self.ctx.answer_sets:  # Dial U(): on the callee's channel, before the bridge
            self.dp.answer_gosub(self, c1, ANSWER_GOSUB)
        br = w.bridge_create()
        self.bridge = br
        caller_steps: list[Step] = []
        if g1 is not None:
            w.dial_end(None, g1, "ANSWER")
            self._orig_respond(4, g1)
            caller_steps = self.dp.caller_leg_steps(self, g1)
            self._caller_step(g1, 1, caller_steps)
        w.newexten(c1, 1, "AppDial", "(Outgoing Line)")
        self._caller_step(g1, 2, caller_steps)
        w.bridge_enter(br, c1)
        for prio in range(3, len(caller_steps) + 1):
            self._caller_step(g1, prio, caller_steps)
        w.bridge_enter(br, g2)
        w.varset(c1, "BRIDGEPEER", g2.name)
        if g2.sip_call_id:
            w.varset(c1, "BRIDGEPVTCALLID", g2.sip_call_id)
        w.varset(g2, "BRIDGEPEER", c1.name)
        self.dp.call_answered(self)

    def _caller_step(self, g1: Channel | None, prio: int, steps: list[Step]) -> None:
        if g1 is None or prio > len(steps):
            return
        app, data = steps[prio - 1]
        self.w.newexten(g1, prio, app, data)
        if app == "ExecIf" and data.startswith("1?MixMonitor("):
            self._mixmonitor(g1, data[len("1?MixMonitor(") : -1])

    def _mixmonitor(self, ch: Channel, path: str) -> None:
        self.w.varset(ch, "MIXMONITOR_FILENAME", path)
        self.w.ch_event("MixMonitorStart", ch)

    def _dial_hangup_callees(self, status: str, cause: int, c2_cause: int) -> None:
        """DialEnd, then the callee pair goes (c1/c3 order)."""
        g2, c1, c2 = self.g2, self.c1, self.c2
        assert c1 is not None and c2 is not None
        w = self.w
        w.dial_end(g2, c1, status)
        w.hangup_request(c2, cause)
        self._hangup(c1, cause)
        w.soft_hangup_request(c2, 16)
        if status == "NOANSWER":
            w.varset(g2, "DIALSTATUS", status)
            self._hangup(c2, c2_cause)
        else:
            self._hangup(c2, c2_cause)
            w.varset(g2, "DIALSTATUS", status)
        self.dial_status = status

    def _dial_timeout(self) -> None:
        """c1: Dial's own timeout; the gateway context continues to Hangup()."""
        self.outcome = "noanswer"
        self._orig_respond(0)
        self._dial_hangup_callees("NOANSWER", 0, 0)

    def _busy(self, busy: bool) -> None:
        """c3 / c5: Busy() or Congestion() on the far end."""
        c2 = self.c2
        assert c2 is not None
        self.outcome = "busy" if busy else "congestion"
        self.w.newstate(c2, BUSY)
        self._device_inuse(c2)
        self._dial_hangup_callees("BUSY" if busy else "CONGESTION", 0, 17 if busy else 34)

    def _callee_gone(self, ch: Channel, cause: int) -> None:
        """The callee leg was hung up (AMI) before answering."""
        g2, c1, c2 = self.g2, self.c1, self.c2
        assert c1 is not None and c2 is not None
        w = self.w
        status = {17: "BUSY", 34: "CONGESTION"}.get(cause, "NOANSWER")
        self.outcome = "noanswer"
        if ch is c2:
            w.soft_hangup_request(c2, 16)
            w.hangup_request(c1, cause)
            self._hangup(c2, cause)
            w.dial_end(g2, c1, status)
            self._hangup(c1, cause)
        else:
            w.dial_end(g2, c1, status)
            w.hangup_request(c2, cause)
            self._hangup(c1, cause)
            w.soft_hangup_request(c2, 16)
            self._hangup(c2, cause)
        w.varset(g2, "DIALSTATUS", status)
        self.dial_status = status

    def _callee_hangs_up(self, cause: int) -> None:
        if self.answered:
            self._teardown_bridged("c2", cause)
            return
        assert self.c2 is not None
        self._callee_gone(self.c2, cause)
        # the step runner returns; the gateway context continues after Dial

    def _caller_cancel(self, cause: int, timeout: bool) -> None:
        """c2: the caller leg (;1) goes while the callee rings: Dial is cancelled."""
        g1, g2, c1, c2 = self.g1, self.g2, self.c1, self.c2
        assert c1 is not None and c2 is not None
        w = self.w
        self.outcome = "cancel"
        if g1 is not None and not self.g1_gone:
            self.g1_gone = True
            w.hangup_request(g2, cause)
            self._orig_respond(3 if g1.state == RINGING else 0)
            self._hangup(g1, cause)
        w.dial_end(g2, c1, "CANCEL")
        w.hangup_request(c2, cause)
        self._hangup(c1, cause)
        w.soft_hangup_request(c2, 16)
        self._hangup(c2, cause)
        w.varset(g2, "DIALSTATUS", "CANCEL")
        self.dial_status = "CANCEL"
        w.soft_hangup_request(g2, 16)
        self._hangup(g2, cause)
        w.cdr(g2, "NO ANSWER")
        self.finished = True

    def _g2_cancel(self, cause: int) -> None:
        """AMI Hangup / AbsoluteTimeout of the dialling channel while the callee rings."""
        g1, g2, c1, c2 = self.g1, self.g2, self.c1, self.c2
        assert c1 is not None and c2 is not None
        w = self.w
        self.outcome = "cancel"
        w.dial_end(g2, c1, "CANCEL")
        w.hangup_request(c2, cause)
        self._hangup(c1, cause)
        w.soft_hangup_request(c2, 16)
        self._hangup(c2, cause)
        w.varset(g2, "DIALSTATUS", "CANCEL")
        self.dial_status = "CANCEL"
        w.soft_hangup_request(g2, 16)
        live_g1 = g1 is not None and not self.g1_gone
        if g1 is not None and live_g1:
            w.varset(g1, "CHANLOCALSTATUS", "CANCEL")
            w.hangup_request(g1, cause)
        self._hangup(g2, cause)
        w.cdr(g2, "NO ANSWER")
        if g1 is not None and live_g1:
            w.dial_end(None, g1, "NOANSWER")
            self._orig_respond(3 if g1.state == RINGING else 0)
            self._hangup(g1, cause)
        self.finished = True

    # ---- end of an answered call ----------------------------------------------------------

    def _dial_result_vars(self) -> None:
        w, g2 = self.w, self.g2
        now = w.clock.now()
        # the calling channel's up time (ast_channel_get_up_time_ms), as Asterisk's Dial:
        # from the callee's answer, or earlier when the channel was answered first (h3)
        up = g2.answered_at or (self.c1.answered_at if self.c1 else None) or now
        answered_ms = int((now - up) * 1000)
        dialed_ms = int((now - self.dial_started) * 1000)
        w.varset(g2, "ANSWEREDTIME", str(answered_ms // 1000))
        w.varset(g2, "ANSWEREDTIME_MS", str(answered_ms))
        w.varset(g2, "DIALEDTIME", str(dialed_ms // 1000))
        w.varset(g2, "DIALEDTIME_MS", str(dialed_ms))
        w.varset(g2, "DIALSTATUS", "ANSWER")

    def _teardown_bridged(self, initiator: str, cause: int) -> None:
        """End of a bridged call; `initiator` is the leg that went first.

        c2 = far end hung up (b1), g2 = the dialling leg was cut: AMI Hangup, AbsoluteTimeout,
        Dial's L() limit (d1, d2, f1); g1 and c1 mirror those from the other side.
        """
        g1, g2, c1, c2, br = self.g1, self.g2, self.c1, self.c2, self.bridge
        assert c1 is not None and c2 is not None and br is not None
        w = self.w
        live_g1 = g1 is not None and not g1.hungup
        if initiator == "c2":
            w.soft_hangup_request(c2, 16)
            w.hangup_request(c1, cause)
            self._clear_peer(c1)
            self._hangup(c2, cause)
            w.varset(g2, "BRIDGEPEER", "")
            w.bridge_leave(br, c1)
            w.bridge_leave(br, g2)
            self._g2_leaves(cause)
            w.bridge_destroy(br)
            self._hangup(c1, cause)
        elif initiator == "c1":
            self._clear_peer(c1)
            w.varset(g2, "BRIDGEPEER", "")
            w.bridge_leave(br, c1)
            w.hangup_request(c2, cause)
            self._hangup(c1, cause)
            w.soft_hangup_request(c2, 16)
            self._hangup(c2, cause)
            w.bridge_leave(br, g2)
            w.bridge_destroy(br)
            self._g2_leaves(cause)
        else:
            if initiator == "g1" and g1 is not None and live_g1:
                w.soft_hangup_request(g1, 16)
                w.hangup_request(g2, cause)
                self._hangup(g1, cause)
            w.varset(g2, "BRIDGEPEER", "")
            self._clear_peer(c1)
            w.bridge_leave(br, g2)
            self._dial_result_vars()
            w.soft_hangup_request(g2, 16)
            if g1 is not None and not g1.hungup:
                w.varset(g1, "CHANLOCALSTATUS", "ANSWER")
                w.hangup_request(g1, cause)
            self._hangup(g2, cause)
            w.bridge_leave(br, c1)
            w.bridge_destroy(br)
            w.hangup_request(c2, cause)
            self._hangup(c1, cause)
            if g1 is not None and not g1.hungup:
                w.soft_hangup_request(g1, 16)
                self._hangup(g1, cause)
            w.soft_hangup_request(c2, 16)
            self._hangup(c2, cause)
        self.bridge = None
        w.cdr(g2)
        if g1 is not None:
            w.cdr(g1)
        w.cdr(c2)
        self.finished = True

    def _clear_peer(self, c1: Channel) -> None:
        self.w.varset(c1, "BRIDGEPEER", "")
        if self.g2.sip_call_id:
            self.w.varset(c1, "BRIDGEPVTCALLID", "")

    def _rtp_stats(self, ch: Channel) -> None:
        """chan_pjsip's RTCP summary as a phone leg with media hangs up (h3)."""
        if ch.sip_call_id:
            for name, value in RTP_QOS.items():
                self.w.varset(ch, name, value)

    def _g2_leaves(self, cause: int) -> None:
        """Dial returns after the bridge broke: its variables, then ;2 and ;1 hang up."""
        g1, g2, w = self.g1, self.g2, self.w
        self._dial_result_vars()
        w.soft_hangup_request(g2, 16)
        if g1 is not None and not g1.hungup:
            w.varset(g1, "CHANLOCALSTATUS", "ANSWER")
            w.hangup_request(g1, cause)
        self._hangup(g2, cause)
        if g1 is not None and not g1.hungup:
            w.soft_hangup_request(g1, 16)
            self._hangup(g1, cause)


class _AgiEvents:
    """AgiHooks for a GatewayCall: the manager events of a running AGI()."""

    def __init__(self, call: GatewayCall) -> None:
        self.call = call
        self.command_id = 0

    def command_started(self, command: str) -> None:
        w = self.call.w
        self.command_id = w.rng.randrange(1, 2**31)
        w.ch_event(
            "AGIExecStart",
            self.call.g2,
            [("CommandId", str(self.command_id)), ("Command", command)],
        )

    def variable_set(self, name: str, value: str) -> None:
        self.call.w.varset(self.call.g2, name, value)

    def hangup_command(self) -> None:
        call = self.call
        call.agi_killed_by = call.agi_killed_by or "agi"
        call.w.soft_hangup_request(call.g2, 32)

    def command_finished(self, command: str, code: int) -> None:
        w = self.call.w
        g2 = self.call.g2
        # ast_answer, before the command's AGIExecEnd (a Local ;2 would answer its ;1 too:
        # not modelled, its state is left as it was)
        answered = code == 200 and command.split()[:1] == ["ANSWER"]
        if answered and self.call.g1 is None and g2.state != UP:
            w.newstate(g2, UP)
        w.ch_event(
            "AGIExecEnd",
            self.call.g2,
            [
                ("CommandId", str(self.command_id)),
                ("Command", command),
                ("ResultCode", str(code)),
                ("Result", RESULT_TEXT.get(code, "Failure")),
            ],
        )


def _int(text: str, default: int) -> int:
    try:
        return int(text.strip().strip('"'))
    except ValueError:
        return default


def _limit_ms(opts: str) -> int | None:
    m = re.search(r"L\((\d+)", opts)
    return int(m.group(1)) if m else None


def _disposition(status: str) -> str:
    return {
        "ANSWER": "ANSWERED",
        "BUSY": "BUSY",
        "CONGESTION": "FAILED",
        "CHANUNAVAIL": "FAILED",
    }.get(status, "NO ANSWER")


def _inheritable(ch: Channel) -> list[tuple[str, str]]:
    """`_X`/`__X` variables in the order a new channel receives them (last set first)."""
    names = [k for k in ch.variables if k.startswith("_")]
    out: list[tuple[str, str]] = []
    for k in reversed(names):
        v = ch.variables[k]
        if k.startswith("__"):
            out.append((k, v))
        else:
            out.append((k[1:], v))
    return out

"""A small model of the test dialplan (conf/extensions.conf) and of a callgate dialplan.

A call entering a gateway context runs FastAGI against the gateway (sim/fastagi.py, a new
TCP connection per AGI() like Asterisk), then applies the channel variables the AGI set:
the recordings' `GW_AUTH=OK` convention, or the public `CALLGATE_*` contract. Allowed calls
dial a simulated far end (sim/farend.py). This module starts calls (Originate, place_call)
and routes AMI-initiated changes (Hangup, AbsoluteTimeout, Redirect, Setvar) to the flow
that owns the channel: sim/gateway_call.py, sim/prompt_spy.py, sim/phones.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from sim.agi_link import AgiTarget, ObservedAgiCall, split_app_data
from sim.astdb import split_db_arg
from sim.channels import RING, Channel
from sim.dialplan_config import (
    DIAL_VARS,
    MONITOR_DIR,
    RECORDING_AGI,
    ContextConfig,
    DialplanConfig,
)
from sim.farend import Step
from sim.flow import Flow, Interrupt, OriginateHandle, OriginateOutcome
from sim.functions import DANGEROUS, evaluate, substitute
from sim.gateway_call import GatewayCall
from sim.originate import OriginateRequest
from sim.periodic_hook import PeriodicHooks
from sim.prompt_spy import PromptSpy
from sim.world import World

log = structlog.get_logger(__name__)


class Dialplan:
    """Starts call flows and routes AMI-initiated changes to the flow owning a channel."""

    def __init__(self, world: World, config: DialplanConfig | None = None) -> None:
        self.world = world
        self.config = config or DialplanConfig()
        self.owners: dict[Channel, Flow] = {}
        self.flows: set[Flow] = set()
        self.on_finished: list[Callable[[Flow], None]] = []
        self.on_answered: list[Callable[[GatewayCall], None]] = []
        self.caller_programs: dict[str, Callable[[GatewayCall, Channel], list[Step]]] = {}
        self.hangup_hooks: dict[Channel, list[Callable[[Channel, int], None]]] = {}
        self.hooks = PeriodicHooks(self)
        # Set by sim/phones.py: places an Originate to PJSIP/<endpoint> (False: not placed).
        self.phone_originator: Callable[[OriginateRequest, OriginateHandle], bool] | None = None

    def before_hangup(self, ch: Channel, cause: int) -> None:
        """Lets whoever else holds the channel (a queue bridge) finish first."""
        for fn in self.hangup_hooks.pop(ch, []):
            fn(ch, cause)

    # ---- starting calls ---------------------------------------------------------------------

    def originate(self, req: OriginateRequest) -> OriginateHandle:
        handle = OriginateHandle(req)
        self.world.processed_calls += 1
        tech, _, rest = req.channel.partition("/")
        exten, _, context = rest.partition("@")
        ctx = self.config.contexts.get(context)
        if tech == "Local" and ctx is not None and exten:
            g1, g2 = self._local_setup(req, exten, context)
            call = GatewayCall(self, ctx, exten, g2, g1, handle)
            self._start(call, call.run())
        elif (
            tech == "Local"
            and context == self.config.prompt_context
            and req.application.lower() == "chanspy"
        ):
            p1, p2 = self._local_setup(req, exten, context)
            target, _, options = req.data.partition(",")
            spy = PromptSpy(self, handle, p1, p2, target.strip(), options)
            self._start(spy, spy.run())
        elif tech == "PJSIP" and self.phone_originator and self.phone_originator(req, handle):
            pass
        else:
            log.warning("sim_originate_unroutable", channel=req.channel)
            loop = asyncio.get_running_loop()
            loop.call_soon(self.originate_response, handle, 0, None)
        return handle

    def place_call(
        self,
        number: str,
        *,
        context: str = "gw-out",
        caller_num: str = "5551234",
        caller_name: str = "",
        endpoint: str = "trunk",
        variables: dict[str, str] | None = None,
        hangup_after: float | None = None,
    ) -> GatewayCall:
        """A call arriving on a PJSIP channel into a gateway context (no AMI involved).

        `hangup_after` (sim seconds from now) makes the caller hang up, answered or not.
        """
        ctx = self.config.contexts.get(context)
        if ctx is None:
            raise ValueError(f"unknown context {context!r}; known: {sorted(self.config.contexts)}")
        w = self.world
        w.processed_calls += 1
        name = f"PJSIP/{endpoint}-{w.next_tech_seq('PJSIP'):08x}"
        ch = w.new_channel(
            name,
            tech="PJSIP",
            context=context,
            exten=number,
            state=RING,
            device=f"PJSIP/{endpoint}",
        )
        ch.cid_num = caller_num or "<unknown>"
        ch.cid_name = caller_name or ("<unknown>" if not caller_num else caller_num)
        ch.dnid = number
        w.newchannel(ch)
        for k, v in (variables or {}).items():
            w.varset(ch, k, v)
        call = GatewayCall(self, ctx, number, ch)
        self._start(call, call.run())
        if hangup_after is not None:
            loop = asyncio.get_running_loop()
            loop.call_later(w.clock.real_seconds(hangup_after), self.request_hangup, ch, 16)
        return call

    def _local_setup(
        self, req: OriginateRequest, exten: str, context: str
    ) -> tuple[Channel, Channel]:
        """Originate's Local pair up to the internal DialBegin (b1 order)."""
        w = self.world
        one, two = w.new_local_pair(exten, context, uid1=req.channel_id, uid2=req.other_channel_id)
        w.newchannel(one)
        w.newchannel(two)
        w.newexten(one, 1, "AppDial2", "(Outgoing Line)")
        for k, v in reversed(req.variables):
            w.varset(one, k, v)
        if req.has_callerid:
            one.cid_num = req.caller_num or "<unknown>"
            one.cid_name = req.caller_name or "<unknown>"
            w.newcallerid(one)
            one.conn_num, one.conn_name = one.cid_num, one.cid_name
            w.newconnectedline(one)
        for k, v in req.variables:
            w.varset(two, k, v)
        if req.has_callerid:
            two.cid_num, two.cid_name = one.cid_num, one.cid_name
            two.conn_num, two.conn_name = one.cid_num, one.cid_name
            w.newcallerid(two)
            w.newconnectedline(two)
        w.local_bridge(one, two)
        w.dial_begin(None, one, f"{exten}@{context}")
        return one, two

    def _start(self, flow: Flow, coro: Coroutine[Any, Any, None]) -> None:
        self.flows.add(flow)
        self.world.spawn(coro)

    start_flow = _start
    local_setup = _local_setup

    def originate_response(
        self, handle: OriginateHandle, reason: int, channel: Channel | None
    ) -> None:
        if handle.done:
            return
        req = handle.req
        ok = reason == 4 and channel is not None
        if channel is not None and ok:
            name, uid = channel.name, channel.uniqueid
            num, cname = channel.cid_num, channel.cid_name
        else:
            name, uid = req.channel, req.channel_id or "<unknown>"
            num = req.caller_num or "<unknown>"
            cname = req.caller_name or "<unknown>"
        target = (
            [("Application", req.application), ("Data", req.data)]
            if req.application
            else [("Context", req.context), ("Exten", req.exten)]
        )
        aid = [("ActionID", req.action_id)] if req.action_id is not None else []
        if req.is_async:
            self.world.emit(
                "OriginateResponse",
                [
                    *aid,
                    ("Response", "Success" if ok else "Failure"),
                    ("Channel", name),
                    *target,
                    ("Reason", str(reason)),
                    ("Uniqueid", uid),
                    ("CallerIDNum", num),
                    ("CallerIDName", cname),
                ],
            )
        handle.resolve(OriginateOutcome(reason, name, uid))

    def call_finished(self, flow: Flow) -> None:
        self.flows.discard(flow)
        for fn in list(self.on_finished):
            fn(flow)
        if isinstance(flow, GatewayCall) and flow.ctx.h_sets:
            self._h_sets(flow)
        if isinstance(flow, GatewayCall) and flow.ctx.release_agi:
            self.world.spawn(self._release(flow))

    def _h_sets(self, call: GatewayCall) -> None:
        """The `h` extension's Set()s, before its AGI; DB(family/key)=value writes AstDB."""
        for data in call.ctx.h_sets:
            self._apply_set(call.g2, data)

    def _apply_set(self, ch: Channel, data: str) -> tuple[str, str]:
        """One Set(name=value) on `ch`, substituted as Asterisk does; returns both."""
        name, _, value = data.partition("=")
        name = substitute(self.world, ch, name, dialplan=True).strip()
        value = substitute(self.world, ch, value, dialplan=True)
        m = re.match(r"^DB\((.*)\)$", name, re.IGNORECASE)
        if m is None:
            ch.variables[name] = value
            return name, value
        found = split_db_arg(m.group(1))
        if found is None:
            log.warning("sim_db_write_refused", arg=m.group(1))  # empty lease: no write
            return name, value
        self.world.astdb.put(*found, value)
        return name, value

    def answer_gosub(self, call: GatewayCall, callee: Channel, context: str) -> None:
        """Dial's U(context^lease): the subroutine runs on the callee's channel (ARG1 = the
        lease), its Set()s as the `h` extension's are (DB() writes AstDB), then Return."""
        saved = (callee.context, callee.exten, callee.priority)
        callee.context, callee.exten = context, "s"
        callee.variables["ARG1"] = call.var(call.g2, "CALLGATE_LEASE") or ""
        try:
            for prio, data in enumerate(call.ctx.answer_sets, start=1):
                name, value = self._apply_set(callee, data)
                self.world.newexten(callee, prio, "Set", f"{name}={value}")
            self.world.newexten(callee, len(call.ctx.answer_sets) + 1, "Return", "")
        finally:
            callee.variables.pop("ARG1", None)
            callee.context, callee.exten, callee.priority = saved

    def call_answered(self, call: GatewayCall) -> None:
        for fn in list(self.on_answered):
            fn(call)

    async def _release(self, call: GatewayCall) -> None:
        """The `h` extension's AGI(release,...): run after the hangup, no AMI events."""
        assert call.ctx.release_agi is not None
        g2 = call.g2
        data = substitute(self.world, g2, call.ctx.release_agi)
        url, args = split_app_data(data)
        try:
            target = AgiTarget.parse(url)
        except ValueError:
            return
        env = {
            "agi_request": target.url,
            "agi_channel": g2.name,
            "agi_type": g2.tech,
            "agi_callerid": evaluate(self.world, g2, "CALLERID(num)") or "unknown",
            "agi_uniqueid": g2.uniqueid,
            "agi_context": g2.context,
            "agi_extension": "h",
            "agi_priority": "1",
        }
        agi = ObservedAgiCall(target, env, dict(g2.variables), args=args, hooks=_NoHooks())
        with contextlib.suppress(Exception):
            await agi.run()

    def caller_leg_steps(self, call: GatewayCall, g1: Channel) -> list[Step]:
        """What the originated ;1 runs once answered (the originate's Context/Application)."""
        origin = call.origin
        assert origin is not None
        req = origin.req
        if req.application:
            return [(req.application, req.data)]
        program = self.caller_programs.get(req.context)
        g1.context, g1.exten = req.context, req.exten or "s"
        if program is not None:
            return program(call, g1)
        record = g1.variables.get("GW_RECORD", "")
        call_id = g1.variables.get("GW_CALL_ID", "")
        flag = "1" if record else "0"
        return [
            ("NoOp", f"caller leg answered for {call_id}"),
            ("ExecIf", f"{flag}?MixMonitor({MONITOR_DIR}/{record}-caller.wav)"),
            ("Wait", "3600"),
        ]

    # ---- AMI-initiated changes ---------------------------------------------------------------

    def request_hangup(self, ch: Channel, cause: int | None, source: str = "ami") -> None:
        if ch.hungup:
            return
        flow = self.owners.get(ch)
        if flow is not None and not flow.finished:
            flow.interrupt(Interrupt("hangup", ch, cause, source))
            return
        # Nobody drives this channel: it just goes.
        w = self.world
        w.soft_hangup_request(ch, 16)
        w.hangup(ch, cause if cause is not None else 16)

    def absolute_timeout(self, ch: Channel, seconds: float) -> None:
        if ch.timeout_handle is not None:
            ch.timeout_handle.cancel()
            ch.timeout_handle = None
            ch.timeout_at = None
        if seconds <= 0:
            return
        w = self.world
        ch.timeout_at = w.clock.now() + seconds
        loop = asyncio.get_running_loop()
        ch.timeout_handle = loop.call_later(
            w.clock.real_seconds(seconds), self.request_hangup, ch, None, "timeout"
        )

    def redirect(self, ch: Channel, context: str, exten: str, priority: int) -> bool:
        """Only the effect on the call is modelled: the channel leaves it (as if hung up)."""
        log.info("sim_redirect", channel=ch.name, context=context, exten=exten, priority=priority)
        self.request_hangup(ch, 16, "redirect")
        return True

    def getvar(self, ch: Channel | None, expr: str) -> str:
        """Getvar over AMI; reading PERIODIC_HOOK installs a hook (with live_dangerously)."""
        args = _periodic_hook_args(expr)
        if args is not None and not self.is_refused(expr):
            return self.hooks.read(ch, args)
        return evaluate(self.world, ch, expr)

    def is_refused(self, name: str) -> bool:
        """A dangerous function while live_dangerously is off (refused over AMI/AGI)."""
        m = re.match(r"^([A-Z_]+)\(", name, re.IGNORECASE)
        dangerous = bool(m and m.group(1).upper() in DANGEROUS)
        return dangerous and not self.world.config.live_dangerously

    def write_function(self, ch: Channel | None, name: str, value: str) -> bool | None:
        """A function write with no VarSet event: True/False (Setvar's `Variable Set` /
        `Variable not set`), None when `name` is not such a function (g2's hook on/off)."""
        args = _periodic_hook_args(name)
        if args is None or self.is_refused(name):
            return None
        return self.hooks.write(ch, args, value)

    def setvar(self, ch: Channel | None, name: str, value: str) -> bool:
        """False when the write is refused (a dangerous function without live_dangerously:
        AMI Setvar then answers `Variable not set`, g1)."""
        if self.is_refused(name):
            return False
        written = self.write_function(ch, name, value)
        if written is not None:
            return written
        self.world.varset(ch, name, value)
        return True


def _periodic_hook_args(expr: str) -> str | None:
    m = re.match(r"^\s*PERIODIC_HOOK\((.*)\)\s*$", expr, re.IGNORECASE)
    return m.group(1) if m else None


class _NoHooks:
    def command_started(self, command: str) -> None:
        pass

    def variable_set(self, name: str, value: str) -> None:
        pass

    def hangup_command(self) -> None:
        pass

    def command_finished(self, command: str, code: int) -> None:
        pass


__all__ = [
    "DIAL_VARS",
    "RECORDING_AGI",
    "ContextConfig",
    "Dialplan",
    "DialplanConfig",
    "Flow",
    "GatewayCall",
    "Interrupt",
    "OriginateHandle",
    "OriginateOutcome",
    "PromptSpy",
]

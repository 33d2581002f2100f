"""AMI Originate to a registered PJSIP endpoint into a gateway context (h3).

The phone rings and answers at once (like the sipp UAS of h3), then its channel runs the
Originate's Context/Exten exactly as any gateway call does (sim/gateway_call.py): NoOp,
FastAGI authorize, Dial to the far end, bridge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from sim.channels import RINGING, UNKNOWN, UP, Channel
from sim.flow import OriginateHandle
from sim.gateway_call import GatewayCall
from sim.originate import OriginateRequest

if TYPE_CHECKING:
    from sim.phones import Endpoint, Phones

log = structlog.get_logger(__name__)


def originate_to_phone(phones: Phones, req: OriginateRequest, handle: OriginateHandle) -> bool:
    """Start the call; False when Asterisk could not place it (the caller then answers
    OriginateResponse Failure): unknown or unregistered endpoint, or a target other than a
    gateway context."""
    dp = phones.dialplan
    _, _, resource = req.channel.partition("/")
    ep = phones.endpoints.get(resource)
    ctx = dp.config.contexts.get(req.context)
    if ep is None or ep.contact is None or ctx is None or req.application or not req.exten:
        log.warning(
            "sim_phone_originate_refused",
            channel=req.channel,
            registered=bool(ep and ep.contact),
            context=req.context,
        )
        return False
    ch = _ring_and_answer(phones, ep, req, handle)
    ch.context, ch.exten = req.context, req.exten
    call = GatewayCall(dp, ctx, req.exten, ch, None, handle)
    dp.world.device_state(ep.device, "INUSE")
    dp.start_flow(call, call.run())
    return True


def _ring_and_answer(
    phones: Phones, ep: Endpoint, req: OriginateRequest, handle: OriginateHandle
) -> Channel:
    """Originate's outgoing leg up to OriginateResponse, in h3's order."""
    dp, w = phones.dialplan, phones.world
    ch = w.new_channel(
        f"PJSIP/{ep.name}-{w.next_tech_seq('PJSIP'):08x}",
        tech="PJSIP",
        context=ep.context,
        exten="s",
        uniqueid=req.channel_id,
        device=ep.device,
    )
    ch.cid_num, ch.cid_name = ep.name, ep.caller_name
    ch.sip_call_id = str(w.new_bridge_id())
    ep.channels.add(ch)
    w.newchannel(ch)
    w.newexten(ch, 1, "AppDial2", "(Outgoing Line)")
    for k, v in reversed(req.variables):
        if k.endswith(")"):  # a function write (PJSIP_HEADER(add,...)): no VarSet event
            log.debug("sim_phone_originate_function", channel=ch.name, function=k, value=v)
            continue
        w.varset(ch, k, v)
    if req.has_callerid:
        ch.cid_num = req.caller_num or UNKNOWN
        ch.cid_name = req.caller_name or UNKNOWN
        w.newcallerid(ch)
        ch.conn_num, ch.conn_name = ch.cid_num, ch.cid_name
        w.newconnectedline(ch)
    w.dial_begin(None, ch, ep.name)
    w.newstate(ch, RINGING)
    w.device_state(ep.device, "RINGING")
    w.dial_state(None, ch, "RINGING")
    w.newstate(ch, UP)
    w.dial_end(None, ch, "ANSWER")
    dp.originate_response(handle, 4, ch)
    return ch

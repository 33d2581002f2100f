"""AMI Originate to a SIP phone (PJSIP/<endpoint>) into a gateway context, beyond h3: what
the gateway sees over FastAGI, the endpoint's state, the deny branch, an unregistered phone."""

from __future__ import annotations

from collections.abc import Callable

from sim.dialplan import RECORDING_AGI, ContextConfig
from sim.simulator import AsteriskSim
from tests.sim.agi_server import Decide, TinyAgiServer, gw_auth_ok
from tests.sim.conftest import SimFactory
from tests.sim.recorded import Frame
from tests.sim.replay import AmiClient

LOGIN = b"Action: Login\r\nUsername: gateway\r\nSecret: gateway\r\n\r\n"
ORIGINATE = (
    b"Action: Originate\r\nActionID: o\r\nChannel: PJSIP/6002\r\nContext: gw-out\r\n"
    b'Exten: 150\r\nCallerID: "Gateway" <100>\r\nAsync: true\r\nChannelId: call-a\r\n'
    b"Variable: GW_CALL_ID=call-1\r\n\r\n"
)


def _is(event: str, **fields: str) -> Callable[[Frame], bool]:
    def pred(f: Frame) -> bool:
        d = dict(f)
        return d.get("Event") == event and all(d.get(k) == v for k, v in fields.items())

    return pred


async def _login(sim: AsteriskSim) -> AmiClient:
    client = await AmiClient.connect(sim.ami_port)
    client.send(LOGIN)
    await client.wait_for(_is("FullyBooted"))
    return client


def _gw_out(sim: AsteriskSim, agi: TinyAgiServer) -> None:
    url = RECORDING_AGI.replace("127.0.0.1:4573", f"127.0.0.1:{agi.port}")
    sim.add_context(ContextConfig("gw-out", "recording", url))


async def _endpoint_state(client: AmiClient, action_id: str) -> str:
    client.send(f"Action: PJSIPShowEndpoints\r\nActionID: {action_id}\r\n\r\n".encode())
    await client.wait_for(_is("EndpointListComplete", ActionID=action_id))
    items = [dict(f) for f in client.frames if _is("EndpointList", ActionID=action_id)(f)]
    return next(i["DeviceState"] for i in items if i["ObjectName"] == "6002")


async def test_phone_call_reaches_the_gateway_and_is_bridged(make_sim: SimFactory) -> None:
    sim = await make_sim()
    sim.register_phone("6002", port=5062)
    async with TinyAgiServer(gw_auth_ok) as agi:
        _gw_out(sim, agi)
        client = await _login(sim)
        try:
            client.send(ORIGINATE)
            resp = dict(await client.wait_for(_is("OriginateResponse")))
            chan = resp["Channel"]
            await client.wait_for(_is("BridgeEnter", Channel=chan))
            in_call = await _endpoint_state(client, "e1")
            client.send(f"Action: Hangup\r\nActionID: h\r\nChannel: {chan}\r\n\r\n".encode())
            hangup = dict(await client.wait_for(_is("Hangup", Channel=chan)))
            after = await _endpoint_state(client, "e2")
        finally:
            await client.close()
    assert chan.startswith("PJSIP/6002-")
    assert (resp["Response"], resp["Reason"], resp["Uniqueid"]) == ("Success", "4", "call-a")
    env = agi.requests[0]
    assert (env["agi_channel"], env["agi_type"], env["agi_uniqueid"]) == (chan, "PJSIP", "call-a")
    assert (env["agi_callerid"], env["agi_context"], env["agi_extension"]) == (
        "100",
        "gw-out",
        "150",
    )
    assert (in_call, after) == ("In use", "Not in use")
    assert hangup["Cause"] == "16"
    qos = [dict(f)["Variable"] for f in client.frames if _is("VarSet", Channel=chan)(f)]
    assert "RTPAUDIOQOS" in qos  # the phone leg had media
    peers = [dict(f) for f in client.frames if _is("VarSet", Variable="BRIDGEPVTCALLID")(f)]
    assert [p["Value"] != "" for p in peers] == [True, False]  # set at bridge, cleared at end


async def test_phone_call_denied_by_the_gateway_is_hung_up(make_sim: SimFactory) -> None:
    sim = await make_sim()
    sim.register_phone("6002", port=5062)
    deny: Decide = lambda env: ["SET VARIABLE GW_AUTH DENIED"]  # noqa: E731
    async with TinyAgiServer(deny) as agi:
        _gw_out(sim, agi)
        client = await _login(sim)
        try:
            client.send(ORIGINATE)
            resp = dict(await client.wait_for(_is("OriginateResponse")))
            hangup = dict(await client.wait_for(_is("Hangup", Channel=resp["Channel"])))
        finally:
            await client.close()
    assert resp["Response"] == "Success"  # the phone answered; the gateway then refused
    assert (hangup["Cause"], hangup["Cause-txt"]) == ("21", "Call Rejected")
    assert not [f for f in client.frames if _is("DialBegin")(f) and "Channel" in dict(f)]


async def test_unregistered_phone_cannot_be_originated(make_sim: SimFactory) -> None:
    sim = await make_sim()
    async with TinyAgiServer(gw_auth_ok) as agi:
        _gw_out(sim, agi)
        client = await _login(sim)
        try:
            client.send(ORIGINATE)
            resp = dict(await client.wait_for(_is("OriginateResponse")))
        finally:
            await client.close()
    assert (resp["Response"], resp["Reason"]) == ("Failure", "0")
    assert (resp["Channel"], resp["Uniqueid"]) == ("PJSIP/6002", "call-a")
    assert not [f for f in client.frames if _is("Newchannel")(f)]
    assert agi.requests == []

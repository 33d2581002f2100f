"""PJSIP endpoints (desk phones): registrations and phone-to-phone calls, as h1/h2 show them.

No SIP is spoken: `register_phone` / `unregister_phone` stand in for a REGISTER and produce
the security, PeerStatus, ContactStatus and DeviceStateChange events Asterisk emits;
PJSIPShowContacts / PJSIPShowEndpoints answer from this state.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from sim.channels import DOWN, RING, RINGING, UP, Bridge, Channel
from sim.dialplan import DIAL_VARS, Dialplan, Flow, Interrupt
from sim.flow import OriginateHandle
from sim.originate import OriginateRequest
from sim.phone_originate import originate_to_phone
from sim.rtp_stats import RTP_QOS
from sim.world import World

LOCAL_SIP = "IPV4/UDP/127.0.0.1/5060"


def _tv(t: float) -> str:
    ms = int((t % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}+0000"


@dataclass
class Contact:
    uri: str
    host: str
    port: int
    user_agent: str
    call_id: str
    expires_at: float
    object_id: str


@dataclass
class Endpoint:
    name: str
    password: str
    context: str = "from-phones"
    caller_name: str = ""
    contact: Contact | None = None
    channels: set[Channel] = field(default_factory=set)

    @property
    def device(self) -> str:
        return f"PJSIP/{self.name}"


class Phones:
    """The PJSIP side of the simulated Asterisk (pjsip.conf endpoints 6001/6002 by default)."""

    def __init__(self, world: World, dialplan: Dialplan) -> None:
        self.world = world
        self.dialplan = dialplan
        self.endpoints: dict[str, Endpoint] = {}
        self._cseq = 17135
        for n in ("6001", "6002"):
            self.add_endpoint(n, f"secret{n}", caller_name=f"Phone {n}")
        dialplan.phone_originator = self.originate

    def add_endpoint(
        self, name: str, password: str, *, context: str = "from-phones", caller_name: str = ""
    ) -> Endpoint:
        ep = Endpoint(name, password, context, caller_name or name)
        self.endpoints[name] = ep
        return ep

    def _endpoint(self, name: str) -> Endpoint:
        ep = self.endpoints.get(name)
        if ep is None:
            raise KeyError(f"no PJSIP endpoint {name!r}; known: {sorted(self.endpoints)}")
        return ep

    def _next_call_id(self, host: str) -> str:
        self._cseq += 4
        return f"1-{self._cseq}@{host}"

    def _security(
        self,
        event: str,
        ep: Endpoint,
        call_id: str,
        remote: str,
        extra: list[tuple[str, str]],
        severity: str = "Informational",
    ) -> None:
        self.world.emit(
            event,
            [
                ("EventTV", _tv(self.world.clock.now())),
                ("Severity", severity),
                ("Service", "PJSIP"),
                ("EventVersion", "1"),
                ("AccountID", ep.name),
                ("SessionID", call_id),
                ("LocalAddress", LOCAL_SIP),
                ("RemoteAddress", remote),
                *extra,
            ],
        )

    def _auth(self, ep: Endpoint, call_id: str, remote: str, password: str | None) -> bool:
        self._security("ChallengeSent", ep, call_id, remote, [("Challenge", "")])
        if password is not None and password != ep.password:
            now = int(self.world.clock.now())
            nonce = hashlib.md5(f"{now}{call_id}".encode()).hexdigest()
            response = hashlib.md5(f"{ep.name}:{password}:{nonce}".encode()).hexdigest()
            self._security(
                "ChallengeResponseFailed",
                ep,
                call_id,
                remote,
                [("Challenge", f"{now}/{nonce}"), ("Response", response), ("ExpectedResponse", "")],
                severity="Error",
            )
            return False
        self._security("SuccessfulAuth", ep, call_id, remote, [("UsingPassword", "1")])
        return True

    def register_phone(
        self,
        endpoint: str,
        *,
        user_agent: str = "sipp",
        host: str = "127.0.0.1",
        port: int | None = None,
        expires: int = 600,
        password: str | None = None,
    ) -> bool:
        """A REGISTER with digest auth (401 first). False if the password was wrong.

        `password=None` means the right one. `expires=0` unregisters.
        """
        ep = self._endpoint(endpoint)
        if port is None:
            port = 5061 + (sorted(self.endpoints).index(endpoint) % 100)
        remote = f"IPV4/UDP/{host}/{port}"
        call_id = self._next_call_id(host)
        if not self._auth(ep, call_id, remote, password):
            return False
        if expires <= 0:
            self._remove_contact(ep)
            return True
        uri = f"sip:{endpoint}@{host}:{port}"
        now = self.world.clock.now()
        fresh = ep.contact is None or ep.contact.uri != uri
        if ep.contact is not None and ep.contact.uri != uri:
            self._remove_contact(ep)
        ep.contact = Contact(
            uri=uri,
            host=host,
            port=port,
            user_agent=user_agent,
            call_id=call_id,
            expires_at=now + expires,
            object_id=hashlib.md5(uri.encode()).hexdigest(),
        )
        if fresh:
            self.world.device_state(ep.device, "NOT_INUSE")
            self._peer_status(ep, "Reachable")
            self._contact_status(ep, uri, "NonQualified")
        return True

    def unregister_phone(
        self,
        endpoint: str,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        password: str | None = None,
    ) -> bool:
        """A REGISTER with Expires: 0 (the contact goes: Unreachable, Removed)."""
        return self.register_phone(endpoint, host=host, port=port, expires=0, password=password)

    def _remove_contact(self, ep: Endpoint) -> None:
        contact = ep.contact
        if contact is None:
            return
        ep.contact = None
        self._peer_status(ep, "Unreachable")
        self.world.device_state(ep.device, "UNAVAILABLE")
        self._contact_status(ep, contact.uri, "Removed")

    def preload_contact(
        self,
        endpoint: str,
        *,
        host: str = "127.0.0.1",
        port: int = 5062,
        user_agent: str = "sipp",
        expires: int = 600,
    ) -> None:
        """A contact left over from before (no events), e.g. h1's stale 6002 registration."""
        ep = self._endpoint(endpoint)
        uri = f"sip:{endpoint}@{host}:{port}"
        ep.contact = Contact(
            uri,
            host,
            port,
            user_agent,
            self._next_call_id(host),
            self.world.clock.now() + expires,
            hashlib.md5(uri.encode()).hexdigest(),
        )

    def _peer_status(self, ep: Endpoint, status: str) -> None:
        self.world.emit(
            "PeerStatus",
            [("ChannelType", "PJSIP"), ("Peer", ep.device), ("PeerStatus", status)],
        )

    def _contact_status(self, ep: Endpoint, uri: str, status: str) -> None:
        self.world.emit(
            "ContactStatus",
            [
                ("URI", uri),
                ("ContactStatus", status),
                ("AOR", ep.name),
                ("EndpointName", ep.name),
                ("RoundtripUsec", "0"),
            ],
        )

    def is_registered(self, endpoint: str) -> bool:
        ep = self.endpoints.get(endpoint)
        return ep is not None and ep.contact is not None

    # ---- list actions ----------------------------------------------------------------------

    def contact_list_items(self) -> list[list[tuple[str, str]]]:
        items = []
        for name in sorted(self.endpoints):
            ep = self.endpoints[name]
            c = ep.contact
            if c is None:
                continue
            items.append(
                [
                    ("ObjectType", "contact"),
                    ("ObjectName", f"{name};@{c.object_id}"),
                    ("ViaAddr", c.host),
                    ("QualifyTimeout", "3.000000"),
                    ("Qualify2xxOnly", "false"),
                    ("CallId", c.call_id),
                    ("RegServer", ""),
                    ("PruneOnBoot", "no"),
                    ("Path", ""),
                    ("Endpoint", name),
                    ("ViaPort", str(c.port)),
                    ("AuthenticateQualify", "no"),
                    ("Uri", c.uri),
                    ("QualifyFrequency", "0"),
                    ("UserAgent", c.user_agent),
                    ("ExpirationTime", str(int(c.expires_at))),
                    ("OutboundProxy", ""),
                    ("Status", "NonQualified"),
                    ("RoundtripUsec", "N/A"),
                ]
            )
        return items

    def endpoint_list_items(self) -> list[list[tuple[str, str]]]:
        items = []
        for name in sorted(self.endpoints):
            ep = self.endpoints[name]
            live = [c for c in ep.channels if not c.hungup]
            if ep.contact is None:
                state = "Unavailable"
            elif live:
                state = "In use"
            else:
                state = "Not in use"
            items.append(
                [
                    ("ObjectType", "endpoint"),
                    ("ObjectName", name),
                    ("Transport", "transport-udp"),
                    ("Aor", name),
                    ("Auths", f"{name}-auth"),
                    ("OutboundAuths", ""),
                    ("Contacts", f"{name}/{ep.contact.uri}," if ep.contact else ""),
                    ("DeviceState", state),
                    ("ActiveChannels", str(len(live))),
                ]
            )
        return items

    # ---- calls -------------------------------------------------------------------------

    def originate(self, req: OriginateRequest, handle: OriginateHandle) -> bool:
        """AMI Originate Channel: PJSIP/<endpoint> into a gateway context (h3)."""
        return originate_to_phone(self, req, handle)

    def call(
        self, caller: str, number: str, *, talk: float = 4.0, hangup_by: str = "caller"
    ) -> PhoneCall:
        """Phone `caller` dials `number` (another phone, h2): answers at once, talks, the
        `hangup_by` side ("caller"/"callee") hangs up after `talk` sim seconds."""
        a = self._endpoint(caller)
        b = self._endpoint(number)
        flow = PhoneCall(self, a, b, talk, hangup_by)
        self.dialplan.flows.add(flow)
        self.world.spawn(flow.run())
        return flow


class PhoneCall(Flow):
    """from-phones: Dial(PJSIP/${EXTEN},20) between two registered phones (h2 order)."""

    def __init__(
        self, phones: Phones, a: Endpoint, b: Endpoint, talk: float, hangup_by: str
    ) -> None:
        super().__init__(phones.dialplan)
        self.phones = phones
        self.a_ep, self.b_ep = a, b
        self.talk = talk
        self.hangup_by = hangup_by
        self.a: Channel | None = None
        self.b: Channel | None = None
        self.bridge: Bridge | None = None

    def _new(self, ep: Endpoint, exten: str, state: int, linkedid: str | None) -> Channel:
        w = self.w
        ch = w.new_channel(
            f"PJSIP/{ep.name}-{w.next_tech_seq('PJSIP'):08x}",
            tech="PJSIP",
            context=ep.context,
            exten=exten,
            state=state,
            linkedid=linkedid,
            device=ep.device,
        )
        ch.cid_num, ch.cid_name = ep.name, ep.caller_name
        ep.channels.add(ch)
        self.own(ch)
        return ch

    async def _run(self) -> None:
        w, ph = self.w, self.phones
        a_ep, b_ep = self.a_ep, self.b_ep
        w.processed_calls += 1
        contact = a_ep.contact
        host = contact.host if contact else "127.0.0.1"
        call_id = ph._next_call_id(host)
        remote = f"IPV4/UDP/{host}/{contact.port if contact else 5061}"
        ph._auth(a_ep, call_id, remote, None)
        a = self._new(a_ep, b_ep.name, RING, None)
        self.a = a
        w.newchannel(a)
        w.varset(a, "SIPDOMAIN", host)
        w.newexten(a, 1, "NoOp", f"phone call {a_ep.name} -> {b_ep.name}")
        w.newexten(a, 2, "Dial", f"PJSIP/{b_ep.name},20")
        for name in DIAL_VARS:
            w.varset(a, name, "")
        b = self._new(b_ep, "s", DOWN, a.linkedid)
        self.b = b
        w.newchannel(b)
        w.varset(b, "DIALEDPEERNUMBER", b_ep.name)
        b.exten = b_ep.name
        b.conn_num, b.conn_name = a.cid_num, a.cid_name
        w.newexten(b, 1, "AppDial", "(Outgoing Line)")
        w.newconnectedline(b)
        w.dial_begin(a, b, b_ep.name)
        a.cdr_dest_channel = b.name
        a.conn_num, a.conn_name = b.cid_num, b.cid_name
        w.newconnectedline(a)
        dial_start = w.clock.now()
        w.varset(a, "RINGTIME", "0")
        w.varset(a, "RINGTIME_MS", "1")
        w.dial_state(a, b, "RINGING")
        w.device_state(a_ep.device, "INUSE")
        w.newstate(b, RINGING)
        w.device_state(b_ep.device, "RINGING")
        w.newstate(b, UP)
        w.varset(a, "DIALSTATUS", "ANSWER")
        w.varset(a, "DIALEDPEERNAME", b.name)
        w.varset(a, "DIALEDPEERNUMBER", b_ep.name)
        b.exten = ""
        w.dial_end(a, b, "ANSWER")
        w.newstate(a, UP)
        w.device_state(b_ep.device, "INUSE")
        br = w.bridge_create()
        self.bridge = br
        w.newexten(b, 1, "AppDial", "(Outgoing Line)")
        w.bridge_enter(br, b)
        w.bridge_enter(br, a)
        br.technology = "native_rtp"  # both legs are RTP: the bridge goes native
        a_pvt = str(w.new_bridge_id())
        for _ in range(3):
            w.varset(a, "BRIDGEPEER", b.name)
            w.varset(a, "BRIDGEPVTCALLID", a_pvt)
            w.varset(b, "BRIDGEPEER", a.name)
            w.varset(b, "BRIDGEPVTCALLID", call_id)
        end = w.clock.now() + self.talk
        first = a if self.hangup_by == "caller" else b
        cause = 16
        while True:
            got = await self.wait({"talk": end})
            if got == "talk":
                break
            if isinstance(got, Interrupt) and not got.channel.hungup:
                first = got.channel
                cause = got.cause if got.cause is not None else 16
                break
        self._teardown(first, cause, dial_start)

    def _teardown(self, first: Channel, cause: int, dial_start: float) -> None:
        w = self.w
        a, b, br = self.a, self.b, self.bridge
        assert a is not None and b is not None and br is not None
        self._qos(a, b)
        w.hangup_request(first, cause)
        w.varset(a, "BRIDGEPEER", "")
        w.varset(a, "BRIDGEPVTCALLID", "")
        w.varset(b, "BRIDGEPEER", "")
        w.varset(b, "BRIDGEPVTCALLID", "")
        w.bridge_leave(br, a)
        now = w.clock.now()
        ans_ms = int((now - (b.answered_at or now)) * 1000)
        dial_ms = int((now - dial_start) * 1000)
        w.varset(a, "ANSWEREDTIME", str(ans_ms // 1000))
        w.varset(a, "ANSWEREDTIME_MS", str(ans_ms))
        w.varset(a, "DIALEDTIME", str(dial_ms // 1000))
        w.varset(a, "DIALEDTIME_MS", str(dial_ms))
        w.varset(a, "DIALSTATUS", "ANSWER")
        w.soft_hangup_request(a, 16)
        w.bridge_leave(br, b)
        w.hangup(a, cause)
        w.bridge_destroy(br)
        w.device_state(self.a_ep.device, "NOT_INUSE")
        for name, value in RTP_QOS.items():
            w.varset(b, name, value)
        w.hangup(b, cause)
        w.device_state(self.b_ep.device, "NOT_INUSE")
        w.cdr(a)
        self.finished = True

    def _qos(self, a: Channel, b: Channel) -> None:
        for name, value in RTP_QOS.items():
            self.w.varset(a, name, value)
            self.w.varset(b, name + "BRIDGED", value)

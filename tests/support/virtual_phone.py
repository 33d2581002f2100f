"""A virtual SIP desk phone on pyVoIP, for end-to-end tests against a real (lab) Asterisk.

pyVoIP is threaded and blocking; this wrapper keeps that behind a small synchronous API
(tests call it through `asyncio.to_thread`): register, answer incoming calls (keeping the
INVITE's headers, so a test sees the auto-answer header Asterisk sent), place a call.

The lab is named by environment variables (see README, "Lab PBX tests"):

    CALLGATE_LAB_PBX=host[:port]        SIP (UDP) of the Asterisk, port 5060 by default
    CALLGATE_LAB_USER / _SECRET         a PJSIP endpoint the virtual phone registers as
    CALLGATE_LAB_MY_IP                  this machine's address as the PBX sees it
                                        (default: the source address towards the PBX)
    CALLGATE_LAB_SIP_PORT               local SIP port (default 5080)
    CALLGATE_LAB_AMI=host[:port]        AMI of the same Asterisk (port 5038 by default)
    CALLGATE_LAB_AMI_USER / _SECRET
    CALLGATE_LAB_DEST                   an extension that answers (e.g. Echo())
    CALLGATE_LAB_CONTEXT                click-to-call context (default callgate-click-to-call)
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyVoIP.VoIP import CallState, PhoneStatus, VoIPCall, VoIPPhone


@dataclass(frozen=True)
class LabPbx:
    host: str
    port: int
    user: str
    secret: str
    my_ip: str
    sip_port: int
    ami_host: str = ""
    ami_port: int = 5038
    ami_user: str = ""
    ami_secret: str = ""
    dest: str = ""
    context: str = "callgate-click-to-call"

    @property
    def has_ami(self) -> bool:
        return bool(self.ami_host and self.ami_user)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LabPbx | str:
        """The lab, or the reason there is none (a sentence for pytest.skip)."""
        env = os.environ if env is None else env
        pbx = env.get("CALLGATE_LAB_PBX", "")
        if not pbx:
            return ("no lab PBX: set CALLGATE_LAB_PBX=host:port, CALLGATE_LAB_USER and "
                    "CALLGATE_LAB_SECRET (README: Lab PBX tests)")
        user, secret = env.get("CALLGATE_LAB_USER", ""), env.get("CALLGATE_LAB_SECRET", "")
        if not user or not secret:
            return "CALLGATE_LAB_PBX is set but CALLGATE_LAB_USER / CALLGATE_LAB_SECRET are not"
        host, port = _host_port(pbx, 5060)
        ami_host, ami_port = _host_port(env.get("CALLGATE_LAB_AMI", ""), 5038)
        return cls(
            host=host, port=port, user=user, secret=secret,
            my_ip=env.get("CALLGATE_LAB_MY_IP") or _source_ip(host, port),
            sip_port=int(env.get("CALLGATE_LAB_SIP_PORT", "5080")),
            ami_host=ami_host, ami_port=ami_port,
            ami_user=env.get("CALLGATE_LAB_AMI_USER", ""),
            ami_secret=env.get("CALLGATE_LAB_AMI_SECRET", ""),
            dest=env.get("CALLGATE_LAB_DEST", ""),
            context=env.get("CALLGATE_LAB_CONTEXT", "callgate-click-to-call"),
        )

    def unreachable(self, timeout: float = 2.0) -> str | None:
        """None when something answers a SIP OPTIONS at the PBX, else why not."""
        call_id = uuid.uuid4().hex
        branch = "z9hG4bK" + uuid.uuid4().hex[:16]
        msg = (
            f"OPTIONS sip:{self.host}:{self.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.my_ip}:{self.sip_port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{self.my_ip}>;tag={call_id[:8]}\r\n"
            f"To: <sip:{self.host}:{self.port}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.sendto(msg.encode(), (self.host, self.port))
                data, _ = sock.recvfrom(65535)
            except OSError as exc:
                return f"lab PBX {self.host}:{self.port} did not answer SIP OPTIONS: {exc}"
        if not data.startswith(b"SIP/2.0 "):
            return f"lab PBX {self.host}:{self.port} answered something that is not SIP"
        return None


@dataclass
class IncomingCall:
    """An INVITE the phone received: its headers as pyVoIP parsed them."""

    headers: dict[str, Any]
    call: VoIPCall
    answered: threading.Event = field(default_factory=threading.Event)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return str(value)
        return None


class VirtualDeskPhone:
    """Registers as `pbx.user`; answers every incoming call when `auto_answer`."""

    def __init__(self, pbx: LabPbx, *, auto_answer: bool = True) -> None:
        self.pbx = pbx
        self.auto_answer = auto_answer
        self.incoming: list[IncomingCall] = []
        self._ringing = threading.Condition()
        self._phone = VoIPPhone(pbx.host, pbx.port, pbx.user, pbx.secret, myIP=pbx.my_ip,
                                callCallback=self._on_call, sipPort=pbx.sip_port)
        _fix_ack_to_tag(self._phone.sip)
        _drain_before_deregister(self._phone.sip)

    def __enter__(self) -> VirtualDeskPhone:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def user_agent_prefix(self) -> str:
        return "pyVoIP"

    def start(self, timeout: float = 10.0) -> None:
        self._phone.start()
        deadline = time.monotonic() + timeout
        while self._phone.get_status() != PhoneStatus.REGISTERED:
            if self._phone.get_status() == PhoneStatus.FAILED or time.monotonic() > deadline:
                self._phone.stop()
                raise RuntimeError(f"{self.pbx.user} did not register with "
                                   f"{self.pbx.host}:{self.pbx.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._phone.stop()

    def _on_call(self, call: VoIPCall) -> None:
        entry = IncomingCall(dict(call.request.headers), call)
        if self.auto_answer:
            call.answer()
            entry.answered.set()
        with self._ringing:
            self.incoming.append(entry)
            self._ringing.notify_all()

    def wait_incoming(self, count: int = 1, timeout: float = 15.0) -> IncomingCall:
        with self._ringing:
            if not self._ringing.wait_for(lambda: len(self.incoming) >= count, timeout):
                raise TimeoutError(f"{self.pbx.user}: no incoming call in {timeout}s")
            return self.incoming[count - 1]

    def call(self, number: str, timeout: float = 15.0) -> VoIPCall:
        """Dial `number`; returns once it is answered (TimeoutError otherwise)."""
        call = self._phone.call(number)
        deadline = time.monotonic() + timeout
        while call.state != CallState.ANSWERED:
            if call.state == CallState.ENDED or time.monotonic() > deadline:
                raise TimeoutError(f"{number} was not answered (state {call.state.value})")
            time.sleep(0.05)
        return call


def _fix_ack_to_tag(sip: Any) -> None:
    """pyVoIP 1.6.8 puts a fresh random To-tag on every ACK instead of the response's.

    Against Asterisk 22 that ACK matches no dialog, so chan_pjsip retransmits its 200 OK
    for 32 s and then drops the call; worse, pyVoIP's deregister reads whatever datagram
    is queued first, takes a retransmitted 200 OK for its answer and stops while the
    contact stays registered. The ACK must carry the To-tag of the response it answers
    (RFC 3261 13.2.2.4 for 2xx, 17.1.1.3 otherwise).
    """
    original = sip.gen_ack

    def gen_ack(response: Any) -> str:
        message: str = original(response)
        to_tag = response.headers["To"]["tag"]
        to_line = f"To: {response.headers['To']['raw']};tag="
        if not to_tag or to_line not in message:
            return message
        head, _, rest = message.partition(to_line)
        return f"{head}{to_line}{to_tag}\r\n{rest.partition(chr(13) + chr(10))[2]}"

    sip.gen_ack = gen_ack


def _drain_before_deregister(sip: Any, settle: float = 0.3) -> None:
    """pyVoIP 1.6.8's deregister takes the first datagram on the socket for the answer to
    its REGISTER (Expires: 0). After a call that is typically Asterisk's 200 OK to the
    phone's BYE, which pyVoIP sends without waiting: deregister then "succeeds" on it,
    never answers the 401 challenge, and the contact stays registered on Asterisk until
    it expires. Discard what is queued (waiting `settle` s for stragglers) first.
    """
    original = sip.deregister

    def deregister() -> bool:
        with sip.recvLock:
            while select.select([sip.s], [], [], settle)[0]:
                sip.s.recv(8192)
        return bool(original())

    sip.deregister = deregister


def _host_port(text: str, default: int) -> tuple[str, int]:
    if not text:
        return "", default
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default
    return host, int(port)


def _source_ip(host: str, port: int) -> str:
    """The local address the kernel would use towards the PBX (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((host, port))
            return str(sock.getsockname()[0])
        except OSError:
            return "0.0.0.0"

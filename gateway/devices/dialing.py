"""Click-to-call as a service: shared by `POST /v1/calls/click-to-call` and
`callgate call click-to-call`.

The user's desk phone is rung over AMI Originate with the auto-answer header(s) its
profile names, so it picks up by itself; its channel then runs `dest` in the click-to-call
context, whose dialplan calls `authorize` (the phone's channel is `PJSIP/<endpoint>-...`,
so the call takes the phone's device scope) and dials the destination. The tenant
travels as the channel variable `CALLGATE_TENANT` for that dialplan to pass on
(`authorize,tenant=${CALLGATE_TENANT},direction=out,...`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from ami import AmiError
from ami.client import AmiClient
from gateway.devices.click_to_call import auto_answer_headers, click_to_call_originate_fields
from gateway.devices.registry import DeviceSnapshot

DEFAULT_CONTEXT = "callgate-click-to-call"
TENANT_VAR = "CALLGATE_TENANT"
_DEST = re.compile(r"^[0-9A-Za-z+*#]{1,64}$")
_CONTEXT = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


class AmiLink(Protocol):
    @property
    def client(self) -> AmiClient: ...


class PhoneLookup(Protocol):
    """The device registry, as far as dialling a desk phone needs it."""

    def device(self, endpoint: str) -> DeviceSnapshot | None: ...


class ClickToCallError(Exception):
    """`code` is stable (API error code): unknown_device, device_offline, bad_request,
    ami_unavailable, originate_failed."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True)
class ClickToCallPlaced:
    tenant: str
    device: str
    profile: str
    dest: str
    context: str
    asterisk: str
    channel_id: str
    headers: tuple[tuple[str, str], ...]
    action_id: str = ""  # the Originate's: its OriginateResponse carries it


class ClickToCall:
    """Also the preview dialer's way to ring an agent's desk phone (gateway/campaigns/
    placer.py): the same checks, the same auto-answer header, the same Originate, plus
    the call's lease variables."""

    def __init__(self, registry: PhoneLookup, asterisks: Mapping[str, AmiLink], *,
                 context: str = DEFAULT_CONTEXT, log: Any = None) -> None:
        self._registry = registry
        self._asterisks = asterisks
        self._context = context
        self._log = log if log is not None else structlog.get_logger(__name__)

    def ready_phone(self, device: str, *, tenant: str = "") -> DeviceSnapshot:
        """The phone, if Asterisk knows it and it is registered; else ClickToCallError
        (unknown_device, device_offline), before anything is authorized or dialled."""
        snap = self._registry.device(device)
        if snap is None:
            raise ClickToCallError("unknown_device",
                                   f"no desk phone {device!r} has been seen by Asterisk", "device")
        if not snap.registered:
            self._log.info("click_to_call_refused", reason="device_offline", endpoint=device,
                           tenant=tenant)
            raise ClickToCallError("device_offline",
                                   f"desk phone {device!r} is not registered", "device")
        return snap

    async def place(self, *, tenant: str, device: str, dest: str, caller_id: str = "",
                    context: str | None = None, timeout_s: int = 30,
                    channel_id: str | None = None,
                    variables: Sequence[tuple[str, str]] = (),
                    asterisk: str | None = None) -> ClickToCallPlaced:
        """Raise ClickToCallError (nothing is dialled) when the phone is unknown or not
        registered, the input is bad, or no Asterisk takes the Originate. `variables` go
        on the phone's channel (a dialer call's CALLGATE_LEASE and request); `asterisk`
        names the server to use, else the first logged in."""
        context = context or self._context
        if not _DEST.match(dest):
            raise ClickToCallError("bad_request", "dest must be 1-64 of digits, letters, + * #",
                                   "dest")
        if not _CONTEXT.match(context):
            raise ClickToCallError("bad_request", "context is not a dialplan context name",
                                   "context")
        snap = self.ready_phone(device, tenant=tenant)
        name, link = self._asterisk(asterisk)
        channel_id = channel_id or f"c2c-{uuid.uuid4().hex[:20]}"
        try:
            fields = click_to_call_originate_fields(
                snap, dest, context, caller_id or f'"Call {dest}" <{dest}>',
                timeout_ms=timeout_s * 1000, channel_id=channel_id,
                variables=[(TENANT_VAR, tenant), *variables],
            )
        except ValueError as exc:
            raise ClickToCallError("bad_request", str(exc)) from None
        try:
            result = await link.client.action("Originate", fields)
        except AmiError as exc:
            self._log.warning("click_to_call_failed", endpoint=device, asterisk=name,
                              error=str(exc))
            raise ClickToCallError("ami_unavailable", f"Asterisk {name!r}: {exc}") from None
        if not result.ok:
            self._log.warning("click_to_call_failed", endpoint=device, asterisk=name,
                              error=result.message)
            raise ClickToCallError("originate_failed",
                                   f"Asterisk {name!r} refused the Originate: {result.message}")
        headers = tuple(auto_answer_headers(snap.profile))
        self._log.info("click_to_call_placed", endpoint=device, tenant=tenant, dest=dest,
                       profile=snap.profile.name, asterisk=name, channel_id=channel_id,
                       auto_answer=[h for h, _ in headers])
        return ClickToCallPlaced(tenant, device, snap.profile.name, dest, context, name,
                                 channel_id, headers, result.response.action_id or "")

    def _asterisk(self, wanted: str | None = None) -> tuple[str, AmiLink]:
        """The first logged-in Asterisk (or `wanted`). The registry does not record which
        server a phone registered with; with several, phones are expected to reach any."""
        for name, link in self._asterisks.items():
            if link.client.logged_in and wanted in (None, name):
                return name, link
        raise ClickToCallError("ami_unavailable", "no Asterisk AMI session is logged in"
                               if wanted is None else f"Asterisk {wanted!r} is not logged in")


__all__ = ["DEFAULT_CONTEXT", "TENANT_VAR", "ClickToCall", "ClickToCallError",
           "ClickToCallPlaced"]

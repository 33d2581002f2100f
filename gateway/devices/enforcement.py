"""Which desk phone a call concerns, and that phone's limit taken from its profile.

The `authorize` route learns the phone three ways (first match wins):

1. `device=<endpoint>`: the dialplan names it. With `direction=in` it is the phone being
   called; with `direction=out` the phone calling.
2. `direction=out` from a desk phone: the calling channel (`agi_channel`,
   `PJSIP/<endpoint>-0000002a`) names an endpoint registered now (a trunk endpoint,
   which does not register, takes no device scope).
3. `direction=in` to a desk phone: the destination (`dest=`, default `agi_extension`) is an
   endpoint the registry knows (`Dial(PJSIP/${EXTEN})` dialplans).

A call *to* a phone that is not registered is refused before any slot is taken, with
`device_offline` (cause 20, subscriber absent: ringing it would fail anyway, and a
carrier sends the caller to voicemail or an announcement instead of retrying).

The device scope's limit is the profile's call appearances (`simultaneous_calls`), written
to Redis the first time this gateway sees a call on the phone and again whenever the
phone's profile changes (it re-registers with another User-Agent); so a hand-set
`callgate limit set device` is replaced by the profile's number for registered phones.
A phone the registry has never seen keeps whatever limit Redis holds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import structlog

from gateway.agi import Decision
from gateway.devices.registry import DeviceRegistry, DeviceSnapshot
from limits import BackendUnavailable, CallRequest, Direction, InvalidLimit, LimitSettings
from limits.scopes import InvalidName, check_name

DEVICE_OFFLINE = "device_offline"
DEVICE_OFFLINE_CAUSE = 20  # Q.850 subscriber absent


def endpoint_of_channel(channel: str) -> str | None:
    """`PJSIP/6001-0000002a` -> `6001`; other technologies and Local/ channels -> None."""
    tech, sep, rest = channel.partition("/")
    if not sep or tech.upper() != "PJSIP" or not rest:
        return None
    name, dash, seq = rest.rpartition("-")
    if not dash or not name or not seq:
        return None
    return name


class DeviceGate:
    """Adds the device scope to a call request and refuses calls to offline phones."""

    def __init__(self, registry: DeviceRegistry, settings: LimitSettings,
                 *, log: Any = None) -> None:
        self._registry = registry
        self._settings = settings
        self._log = log if log is not None else structlog.get_logger(__name__)
        # (tenant, endpoint) -> limit this gateway last wrote for it
        self._written: dict[tuple[str, str], int] = {}

    async def prepare(self, call: CallRequest, channel: str) -> tuple[CallRequest, Decision | None]:
        """The request with its device set (when the call concerns a desk phone), or a
        DENY decision for a call to an unregistered phone."""
        device, to_phone = self._device_of(call, channel)
        if device is None:
            return call, None
        snap = self._registry.device(device)
        if to_phone and (snap is None or not snap.registered):
            self._log.info("device_offline", endpoint=device, call_id=call.call_id,
                           known=snap is not None)
            return call, Decision.deny(DEVICE_OFFLINE, DEVICE_OFFLINE_CAUSE)
        if call.device != device:
            call = dataclasses.replace(call, device=device)
        if snap is not None:
            await self._follow_profile(call.tenant, snap)
        return call, None

    def _device_of(self, call: CallRequest, channel: str) -> tuple[str | None, bool]:
        inbound = call.direction is Direction.IN
        if call.device is not None:
            return call.device, inbound
        if not inbound:
            # Only a registered endpoint is a desk phone: a SIP trunk is configured (and
            # shows in device states) but does not register, and has no call appearances.
            endpoint = endpoint_of_channel(channel)
            snap = None if endpoint is None else self._registry.device(endpoint)
            if snap is not None and snap.registered:
                return endpoint, False
            return None, False
        if call.dest and self._registry.device(call.dest) is not None and _valid(call.dest):
            return call.dest, True
        return None, False

    async def _follow_profile(self, tenant: str, snap: DeviceSnapshot) -> None:
        limit = snap.profile.simultaneous_calls
        key = (tenant, snap.endpoint)
        if self._written.get(key) == limit:
            return
        try:
            await self._settings.set_device_limit(tenant, snap.endpoint, limit)
        except (BackendUnavailable, InvalidLimit, InvalidName) as exc:
            # The acquire that follows meets the same backend and answers by policy.
            self._log.warning("device_limit_not_written", endpoint=snap.endpoint,
                              tenant=tenant, error=str(exc))
            return
        self._written[key] = limit
        self._log.info("device_limit_from_profile", endpoint=snap.endpoint, tenant=tenant,
                       profile=snap.profile.name, appearances=limit)


def _valid(name: str) -> bool:
    try:
        check_name("device", name)
    except InvalidName:
        return False
    return True


__all__ = ["DEVICE_OFFLINE", "DEVICE_OFFLINE_CAUSE", "DeviceGate", "endpoint_of_channel"]

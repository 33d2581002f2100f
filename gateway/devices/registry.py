"""Registry of the SIP desk phones registered through Asterisk (chan_pjsip), fed by AMI events.

What Asterisk 22 actually sends (recording h1 in shared/fixtures/asterisk):

* REGISTER: `PeerStatus: Reachable`, `DeviceStateChange NOT_INUSE`, then
  `ContactStatus: NonQualified` (qualify off; `Reachable`/`Unreachable` with qualify on).
* unregister (Expires: 0): `PeerStatus: Unreachable`, `DeviceStateChange UNAVAILABLE`,
  `ContactStatus: Removed`.
* wrong password: only the security event `ChallengeResponseFailed`; nothing changes.
* ContactStatus carries no User-Agent; only the PJSIPShowContacts list (`ContactList`
  items) and `ContactStatusDetail` do. A phone that registers while we are connected is
  therefore matched to the `default` profile until the wiring asks for its contacts:
  `endpoints_missing_user_agent()` says whom to ask about.

Contacts are the truth for "registered": a device is registered while it has a contact.
PeerStatus `Registered` (the chan_sip wording) counts too when no contact is known.
Calls in progress come from the channel table (`set_active_calls`) when the wiring has one,
otherwise from device state: idle states reset the count, busy states raise it to at least 1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from gateway.devices.events import AmiEvent, event_name
from gateway.devices.events import field as ev_field
from hw_profiles import DeskPhoneProfile, ProfileSet

# Contact status labels of res_pjsip (pjsip_options.c) plus the older Created/Updated.
REACHABLE_CONTACT = frozenset(
    {"Reachable", "NonQualified", "Unqualified", "Created", "Updated", "Unknown"})
IDLE_STATES = frozenset({"NOT_INUSE", "UNAVAILABLE", "INVALID"})
BUSY_STATES = frozenset({"INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"})
# PJSIPShowEndpoints prints device state as text (main/devicestate.c devstatestring).
STATE_FROM_TEXT = {
    "unknown": "UNKNOWN", "not in use": "NOT_INUSE", "in use": "INUSE", "busy": "BUSY",
    "invalid": "INVALID", "unavailable": "UNAVAILABLE", "ringing": "RINGING",
    "ring+inuse": "RINGINUSE", "on hold": "ONHOLD",
}
AUTH_FAILURE_EVENTS = frozenset({"ChallengeResponseFailed", "InvalidPassword"})

ChangeKind = Literal["registered", "unregistered"]


@dataclass(frozen=True)
class ContactSnapshot:
    uri: str
    status: str
    user_agent: str | None
    roundtrip_usec: int | None


@dataclass(frozen=True)
class DeviceSnapshot:
    endpoint: str
    contacts: tuple[ContactSnapshot, ...]
    user_agent: str | None
    profile: DeskPhoneProfile
    # False while the phone runs on the `default` profile (unknown or not yet known UA).
    profile_matched: bool
    registered: bool
    reachable: bool
    device_state: str
    calls_in_progress: int
    call_limit: int
    # Failed digest challenges since the last successful registration.
    auth_failures: int

    @property
    def channel(self) -> str:
        return f"PJSIP/{self.endpoint}"

    @property
    def free_calls(self) -> int:
        return max(0, self.call_limit - self.calls_in_progress)


@dataclass(frozen=True)
class DeviceChange:
    kind: ChangeKind
    device: DeviceSnapshot
    at: float


class DeviceChangeSubscription:
    """Registered/unregistered changes for one consumer (e.g. the MQTT publisher).

    Bounded: a stalled consumer loses the oldest changes (logged), never the registry.
    """

    def __init__(self, maxsize: int, on_close: Callable[[DeviceChangeSubscription], None],
                 log: Any) -> None:
        self._queue: asyncio.Queue[DeviceChange] = asyncio.Queue(maxsize)
        self._on_close = on_close
        self._log = log
        self.dropped = 0

    def offer(self, change: DeviceChange) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            self._log.warning("device_change_dropped", endpoint=change.device.endpoint,
                              dropped=self.dropped)
        self._queue.put_nowait(change)

    async def get(self) -> DeviceChange:
        return await self._queue.get()

    def get_nowait(self) -> DeviceChange | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def __aiter__(self) -> DeviceChangeSubscription:
        return self

    async def __anext__(self) -> DeviceChange:
        return await self.get()

    def close(self) -> None:
        self._on_close(self)


@dataclass
class _Contact:
    uri: str
    status: str
    user_agent: str | None = None
    roundtrip_usec: int | None = None


@dataclass
class _Device:
    endpoint: str
    profile: DeskPhoneProfile
    contacts: dict[str, _Contact] = field(default_factory=dict)
    peer_status: str | None = None
    device_state: str = "UNKNOWN"
    calls: int = 0
    auth_failures: int = 0
    user_agent: str | None = None
    profile_matched: bool = False

    @property
    def registered(self) -> bool:
        return bool(self.contacts) or self.peer_status == "Registered"

    @property
    def reachable(self) -> bool:
        if self.contacts:
            return any(c.status in REACHABLE_CONTACT for c in self.contacts.values())
        return self.peer_status == "Registered"


class DeviceRegistry:
    """Desk phones by PJSIP endpoint name. Plain synchronous state, fed from the AMI event
    loop; consumers read snapshots or subscribe to registration changes."""

    def __init__(self, profiles: ProfileSet, *, clock: Callable[[], float] = time.time,
                 log: Any = None) -> None:
        self._profiles = profiles
        self._clock = clock
        self._log = log if log is not None else structlog.get_logger(__name__)
        self._devices: dict[str, _Device] = {}
        self._warned_user_agents: set[str] = set()
        self._subscribers: list[DeviceChangeSubscription] = []
        self._handlers: dict[str, Callable[[AmiEvent], None]] = {
            "ContactStatus": self._on_contact_status,
            "ContactList": self._on_contact_item,
            "ContactStatusDetail": self._on_contact_item,
            "EndpointList": self._on_endpoint_item,
            "PeerStatus": self._on_peer_status,
            "DeviceStateChange": self._on_device_state,
        }

    # -- reading -------------------------------------------------------------------------

    def device(self, endpoint: str) -> DeviceSnapshot | None:
        d = self._devices.get(endpoint)
        return self._snapshot(d) if d is not None else None

    def devices(self) -> list[DeviceSnapshot]:
        return [self._snapshot(self._devices[name]) for name in sorted(self._devices)]

    def endpoints_missing_user_agent(self) -> list[str]:
        """Registered endpoints whose User-Agent is unknown: ask Asterisk for their contacts
        (PJSIPShowContacts, or PJSIPShowEndpoint for one) and feed the items back."""
        return sorted(n for n, d in self._devices.items() if d.registered and not d.user_agent)

    def subscribe(self, maxsize: int = 1000) -> DeviceChangeSubscription:
        sub = DeviceChangeSubscription(maxsize, self._subscribers.remove, self._log)
        self._subscribers.append(sub)
        return sub

    # -- feeding -------------------------------------------------------------------------

    def handle_event(self, event: AmiEvent) -> None:
        """Apply one AMI event; events the registry does not use are ignored. A malformed
        event is logged and dropped, never raised: it must not stop the AMI reader."""
        name = event_name(event)
        if name in AUTH_FAILURE_EVENTS:
            self._on_auth_failure(event)
            return
        handler = self._handlers.get(name)
        if handler is None:
            return
        try:
            handler(event)
        except (ValueError, TypeError) as exc:
            self._log.warning("device_event_malformed", ami_event=name, error=str(exc))

    def resync(self, items: Iterable[AmiEvent]) -> None:
        """Replace contact state with a full listing, after start-up or an AMI reconnect.

        `items` are the `ContactList` events of PJSIPShowContacts (contacts missing from it
        are gone) and, optionally, the `EndpointList` events of PJSIPShowEndpoints (device
        state and active channel counts; endpoints missing from it are forgotten).
        """
        contacts: list[AmiEvent] = []
        endpoints: list[AmiEvent] = []
        for item in items:
            name = event_name(item)
            if name in ("ContactList", "ContactStatusDetail"):
                contacts.append(item)
            elif name == "EndpointList":
                endpoints.append(item)
        before = {n: d.registered for n, d in self._devices.items()}
        if endpoints:
            listed = {ev_field(e, "ObjectName") for e in endpoints}
            for gone in [n for n in self._devices if n not in listed]:
                device = self._devices.pop(gone)
                if device.registered:
                    device.contacts.clear()
                    device.peer_status = None
                    self._notify(device, False)
        for device in self._devices.values():
            device.contacts.clear()
            if device.peer_status == "Registered":
                device.peer_status = None
        for item in endpoints:
            self._apply_guarded(self._on_endpoint_item, item, notify=False)
        for item in contacts:
            self._apply_guarded(self._on_contact_item, item, notify=False)
        for name, device in self._devices.items():
            if before.get(name, False) != device.registered:
                self._notify(device, device.registered)
        self._log.info("device_registry_resynced", devices=len(self._devices),
                       registered=sum(d.registered for d in self._devices.values()))

    def set_active_calls(self, endpoint: str, calls: int) -> None:
        """Exact count of channels on the endpoint, from the live channel table."""
        if calls < 0:
            raise ValueError(f"calls must be >= 0, got {calls}")
        self._device_for(endpoint).calls = calls

    def set_profiles(self, profiles: ProfileSet) -> None:
        """New profile set (operator reload): every device is matched again."""
        self._profiles = profiles
        self._warned_user_agents.clear()
        for device in self._devices.values():
            self._match(device)

    # -- event handlers ------------------------------------------------------------------

    def _apply_guarded(self, handler: Callable[[AmiEvent, bool], None], item: AmiEvent,
                       notify: bool) -> None:
        try:
            handler(item, notify)
        except (ValueError, TypeError) as exc:
            self._log.warning("device_event_malformed", ami_event=event_name(item),
                              error=str(exc))

    def _on_contact_status(self, event: AmiEvent) -> None:
        endpoint = _require(event, "EndpointName", "AOR")
        uri = _require(event, "URI", "Uri")
        status = _require(event, "ContactStatus", "Status")
        device = self._device_for(endpoint)
        was = device.registered
        if status == "Removed":
            device.contacts.pop(uri, None)
        else:
            contact = device.contacts.get(uri)
            if contact is None:
                contact = device.contacts[uri] = _Contact(uri, status)
                device.auth_failures = 0
            contact.status = status
            contact.roundtrip_usec = _usec(ev_field(event, "RoundtripUsec"))
            self._learn_user_agent(device, contact, ev_field(event, "UserAgent"))
        self._changed(device, was)

    def _on_contact_item(self, event: AmiEvent, notify: bool = True) -> None:
        endpoint = ev_field(event, "Endpoint", "EndpointName") or _aor_of(event)
        uri = _require(event, "Uri", "URI")
        if not endpoint:
            raise ValueError("contact item names no endpoint")
        device = self._device_for(endpoint)
        was = device.registered
        contact = device.contacts.get(uri)
        status = ev_field(event, "Status") or "Unknown"
        if contact is None:
            contact = device.contacts[uri] = _Contact(uri, status)
        contact.status = status
        contact.roundtrip_usec = _usec(ev_field(event, "RoundtripUsec"))
        self._learn_user_agent(device, contact, ev_field(event, "UserAgent"))
        if notify:
            self._changed(device, was)

    def _on_endpoint_item(self, event: AmiEvent, notify: bool = True) -> None:
        device = self._device_for(_require(event, "ObjectName"))
        state_text = ev_field(event, "DeviceState")
        if state_text:
            device.device_state = STATE_FROM_TEXT.get(state_text.lower(), state_text.upper())
        active = ev_field(event, "ActiveChannels")
        if active is not None:
            device.calls = max(0, int(active))

    def _on_peer_status(self, event: AmiEvent) -> None:
        endpoint = _pjsip_resource(_require(event, "Peer"))
        if endpoint is None:
            return
        status = _require(event, "PeerStatus")
        device = self._device_for(endpoint)
        was = device.registered
        device.peer_status = status
        if status == "Rejected":
            device.auth_failures += 1
        self._changed(device, was)

    def _on_device_state(self, event: AmiEvent) -> None:
        endpoint = _pjsip_resource(_require(event, "Device"))
        if endpoint is None:
            return
        state = _require(event, "State").upper()
        device = self._device_for(endpoint)
        device.device_state = state
        if state in IDLE_STATES:
            device.calls = 0
        elif state in BUSY_STATES:
            device.calls = max(device.calls, 1)

    def _on_auth_failure(self, event: AmiEvent) -> None:
        # Only endpoints we know: scanners try thousands of made-up account names.
        if ev_field(event, "Service") not in (None, "PJSIP"):
            return
        device = self._devices.get(ev_field(event, "AccountID") or "")
        if device is None:
            return
        device.auth_failures += 1
        self._log.info("device_auth_failed", endpoint=device.endpoint,
                       failures=device.auth_failures,
                       remote=ev_field(event, "RemoteAddress"))

    # -- internals -----------------------------------------------------------------------

    def _device_for(self, endpoint: str) -> _Device:
        device = self._devices.get(endpoint)
        if device is None:
            device = self._devices[endpoint] = _Device(
                endpoint, self._profiles.default_desk_phone)
        return device

    def _learn_user_agent(self, device: _Device, contact: _Contact, ua: str | None) -> None:
        if not ua:
            return
        contact.user_agent = ua
        if ua != device.user_agent:
            device.user_agent = ua
            self._match(device)

    def _match(self, device: _Device) -> None:
        if not device.user_agent:
            device.profile, device.profile_matched = self._profiles.default_desk_phone, False
            return
        profile = self._profiles.match_user_agent(device.user_agent)
        device.profile = profile
        device.profile_matched = profile is not self._profiles.default_desk_phone
        if device.profile_matched:
            self._log.debug("device_profile_matched", endpoint=device.endpoint,
                            user_agent=device.user_agent, profile=profile.name)
        elif device.user_agent not in self._warned_user_agents:
            self._warned_user_agents.add(device.user_agent)
            self._log.warning("device_unknown_user_agent", endpoint=device.endpoint,
                              user_agent=device.user_agent, profile=profile.name)

    def _changed(self, device: _Device, was_registered: bool) -> None:
        if device.registered != was_registered:
            self._notify(device, device.registered)

    def _notify(self, device: _Device, registered: bool) -> None:
        kind: ChangeKind = "registered" if registered else "unregistered"
        snapshot = self._snapshot(device)
        self._log.info("device_" + kind, endpoint=device.endpoint,
                       user_agent=device.user_agent, profile=device.profile.name)
        change = DeviceChange(kind, snapshot, self._clock())
        for sub in list(self._subscribers):
            sub.offer(change)

    def _snapshot(self, d: _Device) -> DeviceSnapshot:
        return DeviceSnapshot(
            endpoint=d.endpoint,
            contacts=tuple(
                ContactSnapshot(c.uri, c.status, c.user_agent, c.roundtrip_usec)
                for c in sorted(d.contacts.values(), key=lambda c: c.uri)),
            user_agent=d.user_agent,
            profile=d.profile,
            profile_matched=d.profile_matched,
            registered=d.registered,
            reachable=d.registered and d.reachable,
            device_state=d.device_state,
            calls_in_progress=d.calls,
            call_limit=d.profile.simultaneous_calls,
            auth_failures=d.auth_failures,
        )


def _require(event: AmiEvent, *keys: str) -> str:
    value = ev_field(event, *keys)
    if value is None:
        raise ValueError(f"missing {keys[0]}")
    return value


def _pjsip_resource(value: str) -> str | None:
    """`PJSIP/6001` -> `6001`; other technologies (Local/, Queue:, Custom:) -> None."""
    tech, sep, resource = value.partition("/")
    if not sep or tech.upper() != "PJSIP" or not resource:
        return None
    return resource


def _aor_of(event: AmiEvent) -> str | None:
    """ContactList ObjectName is `<aor>;@<hash>`; the AOR usually names the endpoint."""
    aor = ev_field(event, "AOR")
    if aor:
        return aor
    name = ev_field(event, "ObjectName")
    return name.split(";", 1)[0] if name else None


def _usec(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None  # "N/A" while not qualified
    return int(value)

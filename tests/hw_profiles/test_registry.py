"""The device registry replays what a real Asterisk 22 sent (recordings h1 and h2) and ends
in the states the recording shows."""

from __future__ import annotations

from structlog.testing import capture_logs

from gateway.devices import DeviceChange, DeviceChangeSubscription, DeviceRegistry
from hw_profiles import ProfileSet
from tests.hw_profiles.recording import Frame, event


def _feed_until(registry: DeviceRegistry, events: list[Frame], stop: int) -> None:
    for ev in events[:stop]:
        registry.handle_event(ev)


def _index(events: list[Frame], name: str, occurrence: int = 1, **fields: str) -> int:
    """Position just after the n-th event `name` whose fields match."""
    seen = 0
    for i, ev in enumerate(events):
        if ev.name == name and all(ev.get(k) == v for k, v in fields.items()):
            seen += 1
            if seen == occurrence:
                return i + 1
    raise AssertionError(f"{name} {fields} #{occurrence} not in recording")


def _drain(sub: DeviceChangeSubscription) -> list[DeviceChange]:
    out = []
    while (change := sub.get_nowait()) is not None:
        out.append(change)
    return out


def test_h1_register_unregister_badpass_reregister(profiles: ProfileSet,
                                                   h1_events: list[Frame]) -> None:
    clock = iter(range(1000, 2000))
    registry = DeviceRegistry(profiles, clock=lambda: float(next(clock)))
    sub = registry.subscribe()

    # 6002 expires=0 for a stale contact: known, never registered.
    _feed_until(registry, h1_events, _index(h1_events, "ContactStatus", ContactStatus="Removed"))
    d6002 = registry.device("6002")
    assert d6002 is not None and not d6002.registered and d6002.device_state == "UNAVAILABLE"
    assert _drain(sub) == []

    # 6001 and 6002 register (expires=600): contacts are NonQualified (qualify off).
    registry = DeviceRegistry(profiles, clock=lambda: float(next(clock)))
    sub = registry.subscribe()
    after_contacts = _index(h1_events, "ContactListComplete")
    _feed_until(registry, h1_events, after_contacts)
    for name in ("6001", "6002"):
        device = registry.device(name)
        assert device is not None
        assert device.registered and device.reachable
        assert device.device_state == "NOT_INUSE"
        assert [(c.uri, c.status) for c in device.contacts] == [
            (f"sip:{name}@127.0.0.1:{5061 if name == '6001' else 5062}", "NonQualified")]
        # ContactStatus has no UserAgent; the PJSIPShowContacts items do ("sipp").
        assert device.user_agent == "sipp"
        assert device.profile.name == "default" and not device.profile_matched
    assert [(c.kind, c.device.endpoint) for c in _drain(sub)] == [
        ("registered", "6001"), ("registered", "6002")]

    # 6001 unregisters.
    unreg = _index(h1_events, "ContactStatus", 2, ContactStatus="Removed")
    for ev in h1_events[after_contacts:unreg]:
        registry.handle_event(ev)
    d6001 = registry.device("6001")
    assert d6001 is not None and not d6001.registered and d6001.contacts == ()
    assert d6001.device_state == "UNAVAILABLE"
    changes = _drain(sub)
    assert [(c.kind, c.device.endpoint) for c in changes] == [("unregistered", "6001")]
    assert changes[0].device.registered is False

    # Wrong password: a ChallengeResponseFailed and nothing else changes.
    badpass = _index(h1_events, "ChallengeResponseFailed")
    for ev in h1_events[unreg:badpass]:
        registry.handle_event(ev)
    d6001 = registry.device("6001")
    assert d6001 is not None and not d6001.registered and d6001.auth_failures == 1
    assert _drain(sub) == []

    # Re-register: registered again, failures forgotten; 6002 untouched throughout.
    for ev in h1_events[badpass:]:
        registry.handle_event(ev)
    d6001, d6002 = registry.device("6001"), registry.device("6002")
    assert d6001 is not None and d6001.registered and d6001.auth_failures == 0
    assert d6002 is not None and d6002.registered
    assert [(c.kind, c.device.endpoint) for c in _drain(sub)] == [("registered", "6001")]
    assert [d.endpoint for d in registry.devices()] == ["6001", "6002"]
    assert registry.endpoints_missing_user_agent() == []


def test_ua_unknown_until_contacts_are_listed(profiles: ProfileSet,
                                              h1_events: list[Frame]) -> None:
    registry = DeviceRegistry(profiles)
    before_list = _index(h1_events, "ContactStatus", 2, ContactStatus="NonQualified")
    _feed_until(registry, h1_events, before_list)
    assert registry.endpoints_missing_user_agent() == ["6001", "6002"]
    device = registry.device("6001")
    assert device is not None and device.user_agent is None
    assert device.profile is profiles.default_desk_phone


def test_resync_replaces_contacts_and_reports_changes(profiles: ProfileSet,
                                                      h1_events: list[Frame]) -> None:
    registry = DeviceRegistry(profiles)
    _feed_until(registry, h1_events, _index(h1_events, "ContactListComplete"))
    sub = registry.subscribe()
    # After an AMI reconnect: 6001 is now a Yealink, 6002 vanished, 6003 appeared.
    registry.resync([
        event("ContactList", ObjectName="6001;@abc", Endpoint="6001",
              Uri="sip:6001@10.0.0.5:5060", UserAgent="Yealink SIP-T46U 108.86.0.75",
              Status="Reachable", RoundtripUsec="1834"),
        event("ContactList", ObjectName="6003;@def", Endpoint="6003",
              Uri="sip:6003@10.0.0.6:5060", UserAgent="Grandstream GXP2170 1.0.11.79",
              Status="NonQualified", RoundtripUsec="N/A"),
        event("EndpointList", ObjectName="6001", DeviceState="In use", ActiveChannels="2"),
        event("EndpointList", ObjectName="6002", DeviceState="Unavailable",
              ActiveChannels="0"),
        event("EndpointList", ObjectName="6003", DeviceState="Not in use",
              ActiveChannels="0"),
    ])
    d6001, d6002, d6003 = (registry.device(n) for n in ("6001", "6002", "6003"))
    assert d6001 is not None and d6001.registered
    assert [c.uri for c in d6001.contacts] == ["sip:6001@10.0.0.5:5060"]
    assert d6001.contacts[0].roundtrip_usec == 1834
    assert d6001.profile.name == "yealink-t46u"
    assert d6001.device_state == "INUSE" and d6001.calls_in_progress == 2
    assert d6001.free_calls == 3
    assert d6002 is not None and not d6002.registered
    assert d6003 is not None and d6003.registered and d6003.call_limit == 12
    changes = sorted((c.kind, c.device.endpoint) for c in _drain(sub))
    assert changes == [("registered", "6003"), ("unregistered", "6002")]


def test_resync_forgets_endpoints_no_longer_configured(profiles: ProfileSet) -> None:
    registry = DeviceRegistry(profiles)
    registry.handle_event(event("ContactStatus", URI="sip:9@192.0.2.1", ContactStatus="Created",
                                AOR="9", EndpointName="9", RoundtripUsec="0"))
    sub = registry.subscribe()
    registry.resync([event("EndpointList", ObjectName="6001", DeviceState="Unavailable",
                           ActiveChannels="0")])
    assert registry.device("9") is None
    assert [(c.kind, c.device.endpoint) for c in _drain(sub)] == [("unregistered", "9")]


def test_calls_in_progress_follow_device_state(profiles: ProfileSet,
                                               h2_events: list[Frame]) -> None:
    registry = DeviceRegistry(profiles)
    first_inuse = _index(h2_events, "DeviceStateChange", Device="PJSIP/6001", State="INUSE")
    _feed_until(registry, h2_events, first_inuse)
    caller = registry.device("6001")
    assert caller is not None and caller.calls_in_progress == 1
    assert caller.free_calls == caller.call_limit - 1

    ringing = _index(h2_events, "DeviceStateChange", Device="PJSIP/6002", State="RINGING")
    for ev in h2_events[first_inuse:ringing]:
        registry.handle_event(ev)
    callee = registry.device("6002")
    assert callee is not None and callee.calls_in_progress == 1  # ringing holds a line

    registry.set_active_calls("6001", 2)  # the channel table knows better than INUSE
    registry.handle_event(event("DeviceStateChange", Device="PJSIP/6001", State="INUSE"))
    after = registry.device("6001")
    assert after is not None and after.calls_in_progress == 2 and after.free_calls == 0

    for ev in h2_events[ringing:]:
        registry.handle_event(ev)
    for name in ("6001", "6002"):
        device = registry.device(name)
        assert device is not None
        assert device.device_state == "NOT_INUSE" and device.calls_in_progress == 0
    # Local/ channels' device states are not phones.
    assert [d.endpoint for d in registry.devices()] == ["6001", "6002"]


def test_malformed_events_are_logged_not_raised(profiles: ProfileSet) -> None:
    registry = DeviceRegistry(profiles)
    with capture_logs() as logs:
        registry.handle_event(event("ContactStatus", ContactStatus="Created", AOR="6001"))
        registry.handle_event(event("EndpointList", ObjectName="6001", ActiveChannels="many"))
        registry.handle_event(event("DeviceStateChange", Device="PJSIP/6001"))
        registry.handle_event(event("Newchannel", Channel="PJSIP/6001-00000001"))
    assert [e["event"] for e in logs] == ["device_event_malformed"] * 3


def test_auth_failures_only_count_for_known_endpoints(profiles: ProfileSet) -> None:
    registry = DeviceRegistry(profiles)
    registry.handle_event(event("ChallengeResponseFailed", Service="PJSIP", AccountID="admin"))
    assert registry.devices() == []
    registry.handle_event(event("DeviceStateChange", Device="PJSIP/6001", State="UNAVAILABLE"))
    registry.handle_event(event("ChallengeResponseFailed", Service="PJSIP", AccountID="6001"))
    registry.handle_event(event("PeerStatus", ChannelType="PJSIP", Peer="PJSIP/6001",
                                PeerStatus="Rejected"))
    device = registry.device("6001")
    assert device is not None and device.auth_failures == 2 and not device.registered


async def test_subscribers_receive_changes_asynchronously(profiles: ProfileSet) -> None:
    registry = DeviceRegistry(profiles, clock=lambda: 42.0)
    sub = registry.subscribe()
    registry.handle_event(event("ContactStatus", URI="sip:6001@127.0.0.1:5061",
                                ContactStatus="NonQualified", AOR="6001", EndpointName="6001",
                                RoundtripUsec="0"))
    change = await sub.get()
    assert (change.kind, change.device.endpoint, change.at) == ("registered", "6001", 42.0)
    sub.close()
    registry.handle_event(event("ContactStatus", URI="sip:6001@127.0.0.1:5061",
                                ContactStatus="Removed", AOR="6001", EndpointName="6001",
                                RoundtripUsec="0"))
    assert sub.get_nowait() is None


def test_slow_subscriber_loses_oldest_changes(profiles: ProfileSet) -> None:
    registry = DeviceRegistry(profiles)
    sub = registry.subscribe(maxsize=2)
    with capture_logs() as logs:
        for status in ("Created", "Removed", "Created"):
            registry.handle_event(event("ContactStatus", URI="sip:1@x", ContactStatus=status,
                                        AOR="1", EndpointName="1"))
    assert [c.kind for c in _drain(sub)] == ["unregistered", "registered"]
    assert any(e["event"] == "device_change_dropped" for e in logs)

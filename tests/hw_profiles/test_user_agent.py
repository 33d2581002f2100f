"""Phones are recognised from the User-Agent they register with; an unknown phone gets the
default profile and the operator hears about it once, not on every REGISTER."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from gateway.devices import DeviceRegistry
from hw_profiles import ProfileSet
from tests.hw_profiles.recording import Frame, event


@pytest.mark.parametrize(("user_agent", "profile"), [
    ("Yealink SIP-T31P 124.86.0.75", "yealink-t31p"),
    ("Yealink SIP-T46U 108.86.0.75", "yealink-t46u"),
    ("Yealink SIP-T54W 96.86.0.100", "yealink-t54w"),
    ("PolycomVVX-VVX_250-UA/6.4.3.5018", "poly-vvx-250"),
    ("PolycomVVX-VVX_450-UA/6.3.1.8427", "poly-vvx-450"),
    ("Grandstream GXP2170 1.0.11.79", "grandstream-gxp2170"),
    ("Cisco/CP-8841-3PCC-11.3.7", "cisco-cp-8841-3pcc"),
    ("Cisco-CP8841-3PCC/11.3.7_1.0.2", "cisco-cp-8841-3pcc"),
    ("snomD785/10.1.54.13", "snom-d785"),
    ("Fanvil X4U 2.12.2 0c383e1a2b3c", "fanvil-x4u"),
])
def test_shipped_phones_are_recognised(profiles: ProfileSet, user_agent: str,
                                       profile: str) -> None:
    assert profiles.match_user_agent(user_agent).name == profile


@pytest.mark.parametrize("user_agent", [
    "Yealink SIP-T46S 66.86.0.15",   # a sibling model we ship no profile for
    "Yealink SIP-T46UE 108.86.0.75",
    "PolycomVVX-VVX_2500-UA/1.0",
    "Grandstream GXP21700 1.0",
    "sipp",
    "",
])
def test_near_misses_and_strangers_get_the_default(profiles: ProfileSet,
                                                   user_agent: str) -> None:
    assert profiles.match_user_agent(user_agent) is profiles.default_desk_phone


def _contact(endpoint: str, user_agent: str) -> Frame:
    return event("ContactList", Endpoint=endpoint, Uri=f"sip:{endpoint}@192.0.2.7:5060",
                 UserAgent=user_agent, Status="NonQualified", RoundtripUsec="N/A")


def test_unknown_user_agent_warns_once_per_user_agent(profiles: ProfileSet) -> None:
    registry = DeviceRegistry(profiles)
    with capture_logs() as logs:
        for _ in range(3):  # re-registrations and a resync
            registry.handle_event(_contact("7001", "Acme Phone 1.0"))
            registry.handle_event(_contact("7002", "Acme Phone 1.0"))
        registry.resync([_contact("7001", "Acme Phone 1.0")])
        registry.handle_event(_contact("7003", "Yealink SIP-T46U 108.86.0.75"))
    warnings = [e for e in logs if e["event"] == "device_unknown_user_agent"]
    assert len(warnings) == 1
    assert warnings[0]["user_agent"] == "Acme Phone 1.0"
    assert warnings[0]["log_level"] == "warning"
    first = registry.device("7001")
    assert first is not None and first.profile.name == "default" and not first.profile_matched
    yealink = registry.device("7003")
    assert yealink is not None and yealink.profile.name == "yealink-t46u"
    assert yealink.profile_matched and yealink.call_limit == 5

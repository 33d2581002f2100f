"""Click-to-call Originate fields carry the phone's own auto-answer header, in a form that
survives Asterisk's parsing of the `Variable:` header."""

from __future__ import annotations

import pytest

from gateway.devices import (
    DeviceRegistry,
    DeviceSnapshot,
    auto_answer_headers,
    click_to_call_originate_fields,
)
from hw_profiles import DeskPhoneProfile, ProfileSet
from tests.hw_profiles.recording import event

YEALINK_AUTO_ANSWER = "<http://127.0.0.1>;info=alert-autoanswer;delay=0"


def registered(profiles: ProfileSet, endpoint: str, user_agent: str) -> DeviceSnapshot:
    registry = DeviceRegistry(profiles)
    registry.handle_event(event("ContactList", Endpoint=endpoint,
                                Uri=f"sip:{endpoint}@10.0.0.9:5060", UserAgent=user_agent,
                                Status="NonQualified"))
    device = registry.device(endpoint)
    assert device is not None and device.registered
    return device


def separate_args(buf: str) -> list[str]:
    """Port of Asterisk's __ast_app_separate_args(buf, ',', remove_chars=1, ...), which
    manager.c applies to every Originate `Variable:` value (main/app.c)."""
    args, cur, paren, bracket, quote = [], [], 0, 0, False
    i = 0
    while i < len(buf):
        ch = buf[i]
        if ch == "(":
            paren += 1
        elif ch == ")" and paren:
            paren -= 1
        elif ch == "[":
            bracket += 1
        elif ch == "]" and bracket:
            bracket -= 1
        elif ch == '"':
            quote = not quote
            i += 1
            continue  # quote removed
        elif ch == "\\":
            i += 1  # backslash removed, next char literal
            if i < len(buf):
                cur.append(buf[i])
            i += 1
            continue
        elif ch == "," and not paren and not quote and not bracket:
            args.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    args.append("".join(cur))
    return args


def asterisk_sees(variable_value: str) -> list[tuple[str, str]]:
    """(name, value) pairs manager.c would set on the channel."""
    return [tuple(arg.split("=", 1)) for arg in separate_args(variable_value)]  # type: ignore[misc]


def test_yealink_click_to_call_carries_the_yealink_auto_answer_header(
        profiles: ProfileSet) -> None:
    phone = registered(profiles, "6001", "Yealink SIP-T46U 108.86.0.75")
    fields = click_to_call_originate_fields(
        phone, destination="0049301234567", context="gw-out", caller_id='"Call" <0049301234567>',
        channel_id="c2c-1")
    assert fields[:7] == [
        ("Channel", "PJSIP/6001"), ("Context", "gw-out"), ("Exten", "0049301234567"),
        ("Priority", "1"), ("CallerID", '"Call" <0049301234567>'), ("Timeout", "30000"),
        ("Async", "true"),
    ]
    assert ("ChannelId", "c2c-1") in fields
    variables = [v for k, v in fields if k == "Variable"]
    assert variables == [f"PJSIP_HEADER(add,Alert-Info)={YEALINK_AUTO_ANSWER}"]
    assert asterisk_sees(variables[0]) == [("PJSIP_HEADER(add,Alert-Info)", YEALINK_AUTO_ANSWER)]


def test_each_vendor_gets_its_own_header(profiles: ProfileSet) -> None:
    poly = registered(profiles, "7001", "PolycomVVX-VVX_450-UA/6.4.3.5018")
    grandstream = registered(profiles, "7002", "Grandstream GXP2170 1.0.11.79")
    unknown = registered(profiles, "7003", "Acme Phone 1.0")
    assert auto_answer_headers(poly.profile) == [("Alert-Info", "info=Auto Answer")]
    assert auto_answer_headers(grandstream.profile) == [
        ("Call-Info", "<sip:127.0.0.1>;answer-after=0")]
    default_vars = [v for k, v in click_to_call_originate_fields(unknown, "100", "gw-out", "x")
                    if k == "Variable"]
    assert [asterisk_sees(v)[0][0] for v in default_vars] == [
        "PJSIP_HEADER(add,Call-Info)", "PJSIP_HEADER(add,Alert-Info)"]


def test_header_values_with_commas_quotes_and_parens_survive(profiles: ProfileSet) -> None:
    tricky = ('<sip:pbx,1>;x="a b";info=(auto)', "back\\slash")
    phone = registered(profiles, "6001", "Yealink SIP-T46U 108.86.0.75")
    custom = DeskPhoneProfile(
        name="custom", vendor="Acme", model="P", origin=phone.profile.origin, user_agent=None,
        sip_accounts=1, simultaneous_calls=1, line_keys=0,
        auto_answer_headers=(("Call-Info", tricky[0]), ("X-Note", tricky[1])))
    device = DeviceSnapshot(**{**phone.__dict__, "profile": custom})
    variables = [v for k, v in click_to_call_originate_fields(device, "100", "gw-out", "x",
                                                              variables=[("GW_CALL_ID", "a,b")])
                 if k == "Variable"]
    assert [asterisk_sees(v) for v in variables] == [
        [("PJSIP_HEADER(add,Call-Info)", tricky[0])],
        [("PJSIP_HEADER(add,X-Note)", tricky[1])],
        [("GW_CALL_ID", "a,b")],
    ]


@pytest.mark.parametrize("bad", ["100\r\nAction: Hangup", "100\n", ""])
def test_ami_injection_and_empty_destinations_are_refused(profiles: ProfileSet,
                                                          bad: str) -> None:
    phone = registered(profiles, "6001", "Yealink SIP-T46U 108.86.0.75")
    with pytest.raises(ValueError):
        click_to_call_originate_fields(phone, bad, "gw-out", "x")

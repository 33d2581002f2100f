"""Click-to-call: ring the user's own desk phone, have it answer by itself, then dial out.

How the auto-answer header gets into the INVITE on Asterisk 22 (chan_pjsip), and why a
plain AMI Originate is enough (no dialplan change, no pre-dial handler):

1. AMI `Originate` with `Channel: PJSIP/<endpoint>` requests that channel first and only
   then calls it. In main/pbx.c (`pbx_outgoing_attempt`) the order is `ast_dial_prerun()`
   (channel and its SIP session exist, nothing sent yet), then
   `ast_set_variables(dialed, vars)` with the Originate `Variable:` headers, then
   `ast_dial_run()` which sends the INVITE. Manager docs: "Variable: Channel variable to
   set, multiple Variable: headers are allowed."
   https://docs.asterisk.org/Asterisk_22_Documentation/API_Documentation/AMI_Actions/Originate/
2. `ast_set_variables` goes through `pbx_builtin_setvar_helper`, which treats a name ending
   in `)` as a dialplan *function* write (`ast_func_write`), so
   `Variable: PJSIP_HEADER(add,Alert-Info)=...` runs PJSIP_HEADER's write callback on the
   outbound PJSIP channel. That stores the header in the session's header datastore, and
   res_pjsip_header_funcs' INVITE supplement (`outgoing_request`) adds it to the initial
   INVITE (only before the dialog is confirmed, so re-INVITEs stay clean).
   https://docs.asterisk.org/Asterisk_22_Documentation/API_Documentation/Dialplan_Functions/PJSIP_HEADER/
   The PJSIP_HEADER docs recommend a pre-dial handler when *dialplan* code adds headers,
   because in a dialplan the current channel is the caller's; with Originate the variables
   are already applied to the callee (the phone) channel, so no handler is needed.
3. Escaping: manager.c splits each `Variable:` value on commas with
   AST_STANDARD_APP_ARGS (`__ast_app_separate_args(..., remove_chars=1)`): commas inside
   `(...)` are safe, but a backslash, double quote, bracket, parenthesis or comma in the
   header *value* must be backslash-escaped or it is eaten/split. `_escape` does that.

Alternative on Asterisk >= 22.0 (and 21.3, 20.8, 18.23): Originate's `PreDialGoSub` runs a
dialplan subroutine on the phone channel before the call; it needs a dialplan context,
which is why it is not used here.

Verified against the Asterisk source tree (main/pbx.c, main/manager.c, main/app.c,
res/res_pjsip_header_funcs.c); not exercised against a live phone in this repository.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gateway.devices.registry import DeviceSnapshot
from hw_profiles import DeskPhoneProfile

_NEEDS_ESCAPE = re.compile(r'([\\",()\[\]])')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def auto_answer_headers(profile: DeskPhoneProfile) -> list[tuple[str, str]]:
    """The (name, value) SIP headers that make this phone answer without ringing."""
    return list(profile.auto_answer_headers)


def _escape(value: str) -> str:
    return _NEEDS_ESCAPE.sub(r"\\\1", value)


def _check(name: str, value: str) -> str:
    """AMI is line-based: a CR/LF in a field would let a caller inject AMI headers."""
    if _CONTROL.search(value):
        raise ValueError(f"{name} must not contain control characters or line breaks")
    return value


def pjsip_header_variable(name: str, value: str) -> str:
    """`Variable:` value adding one SIP header to the originated PJSIP channel's INVITE."""
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
        raise ValueError(f"not a valid SIP header name: {name!r}")
    return f"PJSIP_HEADER(add,{name})={_escape(_check('header value', value))}"


def click_to_call_originate_fields(
    device: DeviceSnapshot,
    destination: str,
    context: str,
    caller_id: str,
    *,
    timeout_ms: int = 30000,
    channel_id: str | None = None,
    variables: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """AMI Originate fields (without Action/ActionID) for a click-to-call from `device`.

    The phone is rung first with its profile's auto-answer header(s) (see the module
    docstring for why `Variable: PJSIP_HEADER(add,...)` works); once it answers, its
    channel runs `destination` in `context`, where the dialplan applies the usual
    `authorize` hook and dials out. `caller_id` is what the phone shows while it rings.
    The caller checks `device.registered` first (CALLGATE_REASON `device_offline`).
    """
    if not destination or not context:
        raise ValueError("destination and context are required")
    fields: list[tuple[str, str]] = [
        ("Channel", device.channel),
        ("Context", _check("context", context)),
        ("Exten", _check("destination", destination)),
        ("Priority", "1"),
        ("CallerID", _check("caller_id", caller_id)),
        ("Timeout", str(int(timeout_ms))),
        ("Async", "true"),
    ]
    if channel_id:
        fields.append(("ChannelId", _check("channel_id", channel_id)))
    for name, value in auto_answer_headers(device.profile):
        fields.append(("Variable", pjsip_header_variable(name, value)))
    for name, value in variables:
        fields.append(("Variable", f"{_check('variable', name)}={_escape(_check(name, value))}"))
    return fields

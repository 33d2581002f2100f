"""CALLGATE_REQUEST: what reconciliation reads back from a channel must be the request
that was authorized, whatever characters its fields hold."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

from hypothesis import given
from hypothesis import strategies as st

from gateway.call_args import decode_request, encode_request
from limits import CallRequest

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_name = st.from_regex(r"[A-Za-z0-9_.:@+*#-]{0,12}", fullmatch=True)  # what limits accepts


@given(tenant=st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True), dest=_text,
       trunk=_name, call_id=_name, origin=_name)
def test_round_trip_and_same_text_as_a_plain_urlencode(
        tenant: str, dest: str, trunk: str, call_id: str, origin: str) -> None:
    req = CallRequest(tenant, "out", dest=dest, trunk=trunk or None,  # type: ignore[arg-type]
                      call_id=call_id, origin=origin)
    text = encode_request(req)
    assert decode_request(text) == req
    fields = {"tenant": tenant, "direction": "out", "dest": dest, "trunk": trunk,
              "call_id": call_id, "origin": origin}
    plain = urlencode({k: v for k, v in fields.items() if v})
    assert text == base64.urlsafe_b64encode(plain.encode()).decode().rstrip("=")

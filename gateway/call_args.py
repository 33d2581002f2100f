"""The `authorize` route's arguments (public contract) turned into a limits CallRequest.

Unknown argument names are refused rather than ignored: `tenat=acme` in a dialplan must
fail loudly on the first test call, not silently count calls against nobody.

The request is also written on the channel as `CALLGATE_REQUEST` (a URL query string in
unpadded base64url, so it passes through MSet's argument parsing untouched), so that
reconciliation can count a live call again from Asterisk's own state if Redis lost its
lease.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

from limits import CallRequest, InvalidRequest

_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")  # what urlencode (quote_plus) leaves as it is

AUTHORIZE_ARGS = frozenset(
    {"tenant", "direction", "trunk", "number", "dest", "card", "device", "pool", "call"}
)


def call_request(
    args: Mapping[str, str], *, extension: str, call_id: str, origin: str
) -> CallRequest:
    """Raise InvalidRequest with a sentence naming the argument at fault."""
    unknown = sorted(set(args) - AUTHORIZE_ARGS)
    if unknown:
        raise InvalidRequest(
            f"unknown argument {unknown[0]!r}; authorize takes {', '.join(sorted(AUTHORIZE_ARGS))}"
        )
    tenant = args.get("tenant", "")
    if not tenant:
        raise InvalidRequest("tenant= is required")
    direction = args.get("direction", "")
    if direction not in ("in", "out"):
        raise InvalidRequest(f"direction must be in or out, not {direction!r}")
    pool = args.get("pool", "")
    return CallRequest(
        tenant=tenant,
        direction=direction,  # type: ignore[arg-type]  # CallRequest coerces to Direction
        dest=args.get("dest") or extension,
        trunk=args.get("trunk") or None,
        number=args.get("number") or None,
        device=args.get("device") or None,
        pools=(pool,) if pool else (),
        call_id=call_id,
        origin=origin,
    )


def encode_request(req: CallRequest) -> str:
    fields = {
        "tenant": req.tenant,
        "direction": req.direction.value,
        "dest": req.dest,
        "trunk": req.trunk or "",
        "number": req.number or "",
        "device": req.device or "",
        "pool": req.pools[0] if req.pools else "",
        "call_id": req.call_id,
        "origin": req.origin,
    }
    # urlencode's per-character quoting was a visible share of a call's CPU; values made
    # only of characters it leaves alone are joined as they are (same output)
    query = "&".join(f"{k}={v}" if _PLAIN.fullmatch(v) else urlencode({k: v})
                     for k, v in fields.items() if v)
    return base64.urlsafe_b64encode(query.encode()).decode().rstrip("=")


def decode_request(text: str) -> CallRequest | None:
    """None when the text is not one we wrote (logged by the caller)."""
    try:
        query = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        f = dict(parse_qsl(query, strict_parsing=True))
        return CallRequest(
            tenant=f["tenant"],
            direction=f["direction"],  # type: ignore[arg-type]
            dest=f.get("dest", ""),
            trunk=f.get("trunk"),
            number=f.get("number"),
            device=f.get("device"),
            pools=(f["pool"],) if f.get("pool") else (),
            call_id=f.get("call_id", ""),
            origin=f.get("origin", ""),
        )
    except (KeyError, ValueError, binascii.Error):
        return None

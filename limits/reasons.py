"""The reason words and Q.850 causes of the public contract, for decisions made here.

A DENY is hung up by the dialplan with `CALLGATE_CAUSE`; the cause decides what the caller
hears and what an upstream carrier does next, so it is chosen per reason, once, here:

| reason               | result | cause | why this cause                                          |
|----------------------|--------|-------|---------------------------------------------------------|
| `ok`                 | ALLOW  | 0     | not hung up                                             |
| `emergency`          | ALLOW  | 0     | never refused (invariant 3)                             |
| `surcharge`          | ALLOW  | 0     | allowed over the included limit, at extra charge        |
| `tenant_limit`       | DENY   | 34    | no circuit/channel available: the tenant's channels     |
| `trunk_full`         | DENY   | 34    | no circuit/channel available (channels or calls/second) |
| `number_full`        | DENY   | 17    | user busy: every channel of the DID is in use           |
| `device_busy`        | DENY   | 17    | user busy: every call appearance of the phone is in use |
| `license_pool_empty` | DENY   | 34    | no seat free: a resource shortage, not a busy user      |
| `unknown_tenant`     | DENY   | 21    | call rejected: no such customer (a typo in the dialplan) |
| `backend_unavailable`| DENY   | 41    | temporary failure: Redis unreachable, retry later       |
| `bad_request`        | DENY   | 21    | call rejected: the request itself is malformed          |

On SIP, Asterisk maps 34 and 41 to 503 (callers and carriers retry or reroute) and 17 to
486 Busy Here.
"""

from __future__ import annotations

from enum import StrEnum


class Result(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"


class Reason(StrEnum):
    OK = "ok"
    EMERGENCY = "emergency"
    SURCHARGE = "surcharge"
    TENANT_LIMIT = "tenant_limit"
    TRUNK_FULL = "trunk_full"
    NUMBER_FULL = "number_full"
    DEVICE_BUSY = "device_busy"
    LICENSE_POOL_EMPTY = "license_pool_empty"
    UNKNOWN_TENANT = "unknown_tenant"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    BAD_REQUEST = "bad_request"


CAUSES: dict[Reason, int] = {
    Reason.OK: 0,
    Reason.EMERGENCY: 0,
    Reason.SURCHARGE: 0,
    Reason.TENANT_LIMIT: 34,
    Reason.TRUNK_FULL: 34,
    Reason.NUMBER_FULL: 17,
    Reason.DEVICE_BUSY: 17,
    Reason.LICENSE_POOL_EMPTY: 34,
    Reason.UNKNOWN_TENANT: 21,
    Reason.BACKEND_UNAVAILABLE: 41,
    Reason.BAD_REQUEST: 21,
}


def cause_for(reason: Reason) -> int:
    return CAUSES[reason]

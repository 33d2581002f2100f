"""Redis key layout of prepaid. One card's (or tenant account's) keys share the hash tag
`{card:ID}`, so every money script touches one Redis Cluster slot. Indexes that span cards
(tenant's cards, a gateway's live sessions, the CDR stream) live in their own slots and are
written before (added) or after (removed) the card's own atomic step, so a crash in between
leaves an index entry pointing at something that can be checked and repaired, never money
without a record.

| key                                | type   | holds                                        |
|------------------------------------|--------|----------------------------------------------|
| `callgate:{card:ID}:card`          | hash   | the account: balance, held, status, plan,    |
|                                    |        | tenant, pin hash, bundle_left ...            |
| `callgate:{card:ID}:s:SID`         | hash   | one call: state, seq, paid_s, charged, tariff|
| `callgate:{card:ID}:live`          | set    | session ids not yet settled                  |
| `callgate:{card:ID}:cdr_outbox`    | hash   | sid -> CDR JSON, until relayed to the stream |
| `callgate:{card:ID}:credits`       | hash   | credit reference -> "amount:ms" (idempotent) |
| `callgate:{card:ID}:spend`         | hash   | UTC day YYYYMMDD -> minor units charged      |
| `callgate:{card:ID}:pinfails`      | string | failed PINs in the current window            |
| `callgate:{card:ID}:pinlock`       | string | present while the card is locked out (TTL)   |
| `callgate:{card:ID}:recharges`     | list   | JSON records of auto recharges, newest first |
| `callgate:{card:ID}:recharge_lock` | string | one auto recharge at a time (TTL)            |
| `callgate:{caller:NUM}:pinfails`   | string | failed PINs from one caller id, any card     |
| `callgate:{caller:NUM}:pinlock`    | string | present while that caller is locked out      |
| `callgate:{tenant:T}:cards`        | set    | account ids of a tenant                      |
| `callgate:{batch:B}:batch`         | hash   | card batch metadata                          |
| `callgate:{voucher:H}:voucher`     | hash   | one voucher (H = keyed hash of the code)     |
| `callgate:{vbatch:B}:batch`        | hash   | voucher batch metadata                       |
| `callgate:{booth:DEV}:card`        | string | card bound to a call-shop booth (TTL)        |
| `callgate:{plan:NAME}:meta`        | hash   | version, currency, rows, imported_ms         |
| `callgate:{plan:NAME}:v:N`         | string | zlib JSON of version N (settings + rows)     |
| `callgate:{plans}:names`           | set    | plan names                                   |
| `callgate:{gw:G}:prepaid_live`     | set    | session ids ticked by gateway G (resume)     |
| `callgate:{cdr}:stream`            | stream | every CDR; entry id >= the call's end time   |
| `callgate:{cdr}:ids`               | zset   | sid -> entry ms: the relay is exactly-once   |
| `callgate:{cdr}:call:CALLID`       | string | session id of an Asterisk call id (TTL)      |
| `callgate:{cdr}:lease:LEASE`       | string | session id of a gateway limits lease (TTL)   |
| `callgate:{prepaid}:autorecharge`  | set    | accounts with auto recharge on               |
"""

from __future__ import annotations

import re

from prepaid.errors import BadInput

_ID_RE = re.compile(r"^[A-Za-z0-9_.:@+*#-]{1,80}$")
_TOKEN_RE = re.compile(r"^[0-9a-f]{8,32}$")

P = "callgate:"


def check_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise BadInput(f"{kind} {value!r} must be 1-80 of letters, digits and _ . : @ + * # -")
    return value


def card(account: str) -> str:
    return f"{P}{{card:{account}}}:card"


def session(account: str, sid: str) -> str:
    return f"{P}{{card:{account}}}:s:{sid}"


def card_live(account: str) -> str:
    return f"{P}{{card:{account}}}:live"


def cdr_outbox(account: str) -> str:
    return f"{P}{{card:{account}}}:cdr_outbox"


def credits(account: str) -> str:
    return f"{P}{{card:{account}}}:credits"


def spend(account: str) -> str:
    return f"{P}{{card:{account}}}:spend"


def card_pinfails(account: str) -> str:
    return f"{P}{{card:{account}}}:pinfails"


def card_pinlock(account: str) -> str:
    return f"{P}{{card:{account}}}:pinlock"


def recharges(account: str) -> str:
    return f"{P}{{card:{account}}}:recharges"


def recharge_lock(account: str) -> str:
    return f"{P}{{card:{account}}}:recharge_lock"


def caller_pinfails(caller: str) -> str:
    return f"{P}{{caller:{caller}}}:pinfails"


def caller_pinlock(caller: str) -> str:
    return f"{P}{{caller:{caller}}}:pinlock"


def tenant_cards(tenant: str) -> str:
    return f"{P}{{tenant:{tenant}}}:cards"


def batch(batch_id: str) -> str:
    return f"{P}{{batch:{batch_id}}}:batch"


def voucher(code_hash: str) -> str:
    return f"{P}{{voucher:{code_hash}}}:voucher"


def voucher_batch(batch_id: str) -> str:
    return f"{P}{{vbatch:{batch_id}}}:batch"


def booth(device: str) -> str:
    return f"{P}{{booth:{device}}}:card"


def plan_meta(name: str) -> str:
    return f"{P}{{plan:{name}}}:meta"


def plan_blob(name: str, version: int) -> str:
    return f"{P}{{plan:{name}}}:v:{version}"


PLAN_NAMES = f"{P}{{plans}}:names"


def gateway_live(gateway: str) -> str:
    return f"{P}{{gw:{gateway}}}:prepaid_live"


CDR_STREAM = f"{P}{{cdr}}:stream"
CDR_IDS = f"{P}{{cdr}}:ids"


def call_ref(call_id: str) -> str:
    return f"{P}{{cdr}}:call:{call_id}"


def lease_ref(lease: str) -> str:
    return f"{P}{{cdr}}:lease:{lease}"


AUTORECHARGE = f"{P}{{prepaid}}:autorecharge"


def new_session_id(account: str, token: str) -> str:
    return f"{account}~{token}"


def split_session_id(session_id: str) -> tuple[str, str]:
    """'12345678901~9f2c0a1b3c4d' -> ('12345678901', '9f2c0a1b3c4d'); BadInput otherwise."""
    if not isinstance(session_id, str):
        raise BadInput(f"session id {session_id!r} is not ACCOUNT~TOKEN")
    account, sep, token = session_id.rpartition("~")
    if not sep or not _ID_RE.match(account) or not _TOKEN_RE.match(token):
        raise BadInput(f"session id {session_id!r} is not ACCOUNT~TOKEN")
    return account, token

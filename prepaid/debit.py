"""One call's session as stored in Redis, and the arguments and reply of one debit.

Shared by SessionService (answer, settlement) and DebitScheduler (batched ticks), so both
compute billing steps the same way: steps follow the tariff's increments from the answer,
each with its rate-seconds (band-aware); debit.lua applies as many as the balance pays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prepaid import keys
from prepaid.bundles import periods
from prepaid.control import WarnTarget, check_warn_target
from prepaid.rating import Tariff
from prepaid.replies import as_int, str_dict, text

MAX_STEPS_PER_DEBIT = 256


@dataclass(frozen=True)
class BundleSpec:
    allowance_s: int
    rollover_cap_s: int  # -1: no rollover
    cycle_day: int
    timezone: str

    def to_json(self) -> str:
        return json.dumps([self.allowance_s, self.rollover_cap_s, self.cycle_day, self.timezone])

    @classmethod
    def from_json(cls, raw: str) -> BundleSpec | None:
        if not raw:
            return None
        a, c, d, tz = json.loads(raw)
        return cls(int(a), int(c), int(d), str(tz))


@dataclass(frozen=True)
class SessionRecord:
    session_id: str
    account: str
    tenant: str
    call_id: str
    caller: str
    destination: str
    prefix: str
    destination_name: str
    owner: str  # gateway whose ticker debits it
    state: str  # authorized | live | ended
    created_ms: int
    answer_ms: int
    end_ms: int
    seq: int
    paid_s: int
    charged: int
    free_s: int
    on_bundle: bool
    cut: str  # 'credit' once the ticker found no more money
    tariff: Tariff | None  # None for emergency calls
    warn_s: int
    warn_to: WarnTarget
    low_balance: int
    bundle: BundleSpec | None
    emergency: bool
    allowance: int
    warned: bool
    cdr: str
    origin: str = ""  # the Asterisk the call is on, once a gateway saw it answered
    epoch: int = 0  # highest event-owner epoch that debited it (debit.lua's fence)
    max_s: int = 0  # CALLGATE_MAXSEC the card allowed at authorize (0: unknown, no limit)

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> SessionRecord:
        """Scripts read and write the hash's own fields; what they never touch is in one
        JSON field, `meta`, so opening a session is a short command."""
        h = str_dict(raw)
        m: dict[str, Any] = json.loads(h["meta"]) if h.get("meta") else {}
        tariff = m.get("tariff")
        return cls(
            session_id=str(m.get("sid", "")),
            account=str(m.get("account", "")),
            tenant=str(m.get("tenant", "")),
            call_id=str(m.get("call_id", "")),
            caller=str(m.get("caller", "")),
            destination=str(m.get("dest", "")),
            prefix=str(m.get("prefix", "")),
            destination_name=str(m.get("dname", "")),
            owner=str(m.get("owner", "")),
            state=h.get("state", ""),
            created_ms=int(m.get("created_ms", 0)),
            answer_ms=as_int(h.get("answer_ms")),
            end_ms=as_int(h.get("end_ms")),
            seq=as_int(h.get("seq")),
            paid_s=as_int(h.get("paid_s")),
            charged=as_int(h.get("charged")),
            free_s=as_int(h.get("free_s")),
            on_bundle=h.get("bundle") == "1",
            cut=h.get("cut", ""),
            tariff=Tariff.from_json(tariff) if tariff else None,
            warn_s=int(m.get("warn_s", 60)),
            warn_to=check_warn_target(str(m.get("warn_to") or "caller")),
            low_balance=int(m.get("low", 0)),
            bundle=BundleSpec.from_json(str(m.get("bspec") or "")),
            emergency=bool(m.get("emergency", False)),
            allowance=int(m.get("allowance", 0)),
            warned=h.get("warned") == "1",
            cdr=h.get("cdr", ""),
            origin=h.get("origin", ""),
            epoch=as_int(h.get("epoch")),
            max_s=int(m.get("max_s", 0)),
        )


@dataclass(frozen=True, slots=True)
class DebitReply:
    status: str  # ok | dup | stale | ended | missing | fenced
    seq: int
    paid_s: int
    charged: int
    balance: int
    bundle_left: int
    free_s: int
    cut: bool
    on_bundle: bool

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> DebitReply:
        return cls(
            text(raw[0]), as_int(raw[1]), as_int(raw[2]), as_int(raw[3]), as_int(raw[4]),
            as_int(raw[5]), as_int(raw[6]), text(raw[7]) == "credit", text(raw[8]) == "1",
        )


def debit_keys(account: str, session_id: str) -> list[str]:
    return [keys.card(account), keys.session(account, session_id)]


def debit_args(
    tariff: Tariff,
    bundle: BundleSpec | None,
    on_bundle: bool,
    seq: int,
    paid_s: int,
    answer_ms: int,
    now_ms: int,
    target_s: int,
    epoch: int = 0,
    origin: str = "",
) -> list[int | str]:
    """Arguments of debit.lua paying steps from `paid_s` until one ends at or after
    `target_s` (at least one step, at most MAX_STEPS_PER_DEBIT). `epoch`: the debiting
    gateway's event-owner epoch of the call's Asterisk `origin` (0: unfenced)."""
    b_arg = ""
    if on_bundle and bundle is not None:
        period, previous = periods(now_ms / 1000, bundle.cycle_day, bundle.timezone)
        b_arg = f"{period}|{previous}|{bundle.allowance_s}|{bundle.rollover_cap_s}"
    steps = []
    s = paid_s
    for _ in range(MAX_STEPS_PER_DEBIT):
        nb = tariff.next_boundary(s)
        steps.append(f"{nb}:{tariff.rate_seconds(answer_ms, s, nb)}")
        s = nb
        if s >= target_s:
            break
    return [seq + 1, now_ms, answer_ms, paid_s, now_ms - answer_ms, b_arg, ",".join(steps),
            epoch, origin]

"""Leads and their attempts in Redis.

Per lead: a hash (number, time zones, state, counters, the CSV's other columns as `x:*`
for the agent's screen) and a list of attempts. Per campaign: a sorted set of lead ids
scored by when each may next be taken (`due`). Taking leads is one Lua script, so two
gateways never dial the same lead; recording an outcome is one MULTI transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import structlog

from dialer.keys import CampaignKeys
from dialer.leads import Attempt, Lead, LeadState, Outcome
from dialer.redis_types import RedisClient, str_dict, text

log = structlog.get_logger(__name__)


def _script(name: str) -> str:
    return files("dialer").joinpath(f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class LeadRow:
    """A lead read from a CSV row, ready to store."""

    phone: str
    timezones: tuple[str, ...]
    line: int
    due_at: float
    fields: tuple[tuple[str, str], ...] = ()


def _opt_float(v: str | None) -> float | None:
    return float(v) if v else None


def encode_lead(lead: Lead) -> dict[str, str]:
    out = {
        "phone": lead.phone,
        "tz": ",".join(lead.timezones),
        "state": lead.state.value,
        "attempts": str(lead.attempts),
        "last_outcome": lead.last_outcome.value if lead.last_outcome else "",
        "last_attempt_at": "" if lead.last_attempt_at is None else repr(lead.last_attempt_at),
        "next_at": "" if lead.next_at is None else repr(lead.next_at),
        "line": "" if lead.line is None else str(lead.line),
        "offered_to": lead.offered_to,
    }
    for k, v in lead.fields.items():
        out[f"x:{k}"] = v
    return out


def decode_lead(campaign_id: str, raw: dict[str, str]) -> Lead:
    return Lead(
        campaign_id=campaign_id,
        phone=raw["phone"],
        timezones=tuple(z for z in raw.get("tz", "").split(",") if z),
        state=LeadState(raw.get("state", "pending")),
        attempts=int(raw.get("attempts") or 0),
        last_outcome=Outcome(raw["last_outcome"]) if raw.get("last_outcome") else None,
        last_attempt_at=_opt_float(raw.get("last_attempt_at")),
        next_at=_opt_float(raw.get("next_at")),
        line=int(raw["line"]) if raw.get("line") else None,
        fields={k[2:]: v for k, v in raw.items() if k.startswith("x:")},
        offered_to=raw.get("offered_to", ""),
    )


class LeadStore:
    def __init__(self, redis: RedisClient) -> None:
        self._r = redis
        self._claim = redis.register_script(_script("claim"))
        self._import = redis.register_script(_script("import_batch"))

    async def import_batch(self, keys: CampaignKeys, rows: Sequence[LeadRow]) -> list[int]:
        """Store rows; per row 0 if new, else the CSV line of the lead it merged into."""
        if not rows:
            return []
        args = [json.dumps({"p": r.phone, "tz": ",".join(r.timezones), "l": r.line,
                            "d": r.due_at, "x": dict(r.fields)}, separators=(",", ":"))
                for r in rows]
        lead_keys = [keys.lead(r.phone) for r in rows]
        result: Any = await self._import(keys=[keys.due, keys.counts, *lead_keys], args=args)
        return [int(x) for x in result]

    async def get(self, keys: CampaignKeys, phone: str) -> Lead | None:
        raw = str_dict(await self._r.hgetall(keys.lead(phone)))
        return decode_lead(keys.campaign_id, raw) if raw else None

    async def count(self, keys: CampaignKeys) -> int:
        return int(text(await self._r.hget(keys.counts, "leads")) or 0)

    async def due_count(self, keys: CampaignKeys, now: float) -> int:
        return int(await self._r.zcount(keys.due, "-inf", now))

    async def claim(self, keys: CampaignKeys, limit: int, now: float, *, state: LeadState,
                    hold_until: float, holder: str = "") -> list[tuple[Lead, LeadState]]:
        """Take up to `limit` due leads into `state`; returns (lead, previous state) pairs."""
        if limit <= 0:
            return []
        ids = [text(x) for x in await self._r.zrangebyscore(
            keys.due, "-inf", now, start=0, num=limit * 2 + 4)]
        if not ids:
            return []
        result: Any = await self._claim(
            keys=[keys.due, *(keys.lead(i) for i in ids)],
            args=[repr(now), state.value, repr(hold_until), limit, holder, *ids])
        flat = [text(x) for x in result]
        claimed = list(zip(flat[0::2], flat[1::2], strict=True))
        if not claimed:
            return []
        pipe = self._r.pipeline(transaction=False)
        for phone, _ in claimed:
            pipe.hgetall(keys.lead(phone))
        raws = await pipe.execute()
        out = []
        for (_, prev), raw in zip(claimed, raws, strict=True):
            lead = decode_lead(keys.campaign_id, str_dict(raw))
            out.append((lead, LeadState(prev)))
        return out

    async def save(self, keys: CampaignKeys, lead: Lead,
                   attempt: Attempt | None = None) -> None:
        """Write a lead (and its new attempt, if any) and keep the due index in step."""
        pipe = self._r.pipeline(transaction=True)
        mapping: dict[Any, Any] = encode_lead(lead)
        pipe.hset(keys.lead(lead.phone), mapping=mapping)
        if attempt is not None:
            pipe.rpush(keys.attempts(lead.phone), json.dumps({
                "at": attempt.at, "outcome": attempt.outcome.value,
                "duration_s": round(attempt.duration_s, 3), "call_id": attempt.call_id,
                "agent": attempt.agent}))
        if lead.state.closed or lead.next_at is None:
            pipe.zrem(keys.due, lead.phone)
        else:
            pipe.zadd(keys.due, {lead.phone: lead.next_at})
        await pipe.execute()

    async def attempts(self, keys: CampaignKeys, phone: str) -> list[Attempt]:
        raw = await self._r.lrange(keys.attempts(phone), 0, -1)
        out = []
        for item in raw:
            d = json.loads(text(item))
            out.append(Attempt(at=d["at"], outcome=Outcome(d["outcome"]),
                               duration_s=d["duration_s"], call_id=d.get("call_id", ""),
                               agent=d.get("agent", "")))
        return out

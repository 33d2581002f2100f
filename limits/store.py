"""Leases in Redis: the script calls and the reads, and nothing about policy or logging.

Each operation is one EVALSHA (or one pipeline for reads); the argument lists are short
and packed because redis-py encodes every argument in Python on the hot path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from limits.journal import JournalEntry
from limits.keys import SiteKeys
from limits.model import CallRequest, CounterFix, LeaseInfo
from limits.replies import as_int, str_dict, text
from limits.scopes import ScopeKind, owned_scope, trunk_scope
from limits.scripts import LimitScripts, RedisClient

CHUNK = 1000  # leases per script call or pipeline in maintenance operations

# acquire.lua modes
CHECK = "check"
EMERGENCY = "emergency"
RESTORE = "restore"


@dataclass(frozen=True, slots=True)
class Acquired:
    """acquire.lua's answer. code: 1 held, 3 already held (a retried call), 0 refused,
    2 not restored (released moments ago)."""

    code: int
    status: str = ""  # ok | surcharge | emergency | restored, or the refusal reason
    scopes: tuple[str, ...] = ()  # held, or (the refusing scope,)
    surcharged: tuple[str, ...] = ()
    limit: int = 0
    in_use: int = 0

    @property
    def held(self) -> bool:
        return self.code in (1, 3)


class LeaseStore:
    def __init__(self, redis: RedisClient, keys: SiteKeys, scripts: LimitScripts,
                 lease_ttl_ms: int, tombstone_ms: int) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = scripts
        self._ttl_ms = lease_ttl_ms
        self._tombstone_ms = tombstone_ms
        self.refuse_unknown_tenants = False  # run-time setting, read per call
        k = keys
        self._acquire_keys = (k.config, k.bucket, k.used, k.surcharged, k.deadlines, k.released,
                              k.holdings)
        self._release_keys = (k.used, k.surcharged, k.deadlines, k.released, k.holdings)

    # -- script calls ------------------------------------------------------------------

    def acquire_call(self, req: CallRequest, lease_id: str, now: float, mode: str,
                     flags: str = "") -> tuple[tuple[str, ...], tuple[str | int, ...]]:
        pairs: list[str] = []
        if req.device is not None:
            pairs += ("device_busy", owned_scope(ScopeKind.DEVICE, req.tenant, req.device))
        if req.number is not None:
            pairs += ("number_full", owned_scope(ScopeKind.NUMBER, req.tenant, req.number))
        for pool in req.pools:
            pairs += ("license_pool_empty", owned_scope(ScopeKind.POOL, req.tenant, pool))
        meta = f"{req.call_id or '-'} {req.origin or '-'} {flags}"
        args: tuple[str | int, ...] = (
            lease_id, int(now * 1000), self._ttl_ms, mode, req.tenant, req.direction.counter,
            "" if req.trunk is None else trunk_scope(req.trunk), " ".join(pairs), meta,
            "1" if self.refuse_unknown_tenants else "")
        return (*self._acquire_keys, self.keys.lease(lease_id)), args

    async def acquire(self, req: CallRequest, lease_id: str, now: float, mode: str,
                      flags: str = "") -> Acquired:
        keys, args = self.acquire_call(req, lease_id, now, mode, flags)
        reply = await self.scripts.run_hot(self.scripts.acquire, keys, args)
        code = int(reply[0])
        if code == 0:
            return Acquired(0, text(reply[1]), (text(reply[2]),), (), int(reply[3]),
                            int(reply[4]))
        if code == 2:
            return Acquired(2, "released")
        return Acquired(code, text(reply[1]), tuple(text(reply[2]).split()),
                        tuple(text(reply[3]).split()))

    def release_call(self, ids: Sequence[str], mode: str,
                     now: float) -> tuple[tuple[str, ...], tuple[str | int, ...]]:
        now_ms = int(now * 1000)
        keys = (*self._release_keys, *(self.keys.lease(i) for i in ids))
        return keys, (now_ms, mode, now_ms - self._tombstone_ms, *ids)

    async def release(self, ids: Sequence[str], mode: str,
                      now: float) -> list[LeaseInfo | None]:
        """mode 'release' (the call ended) or 'expire' (only if still overdue); one entry
        per id: what this call freed, or None."""
        out: list[LeaseInfo | None] = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            keys, args = self.release_call(chunk, mode, now)
            reply = await self.scripts.run_hot(self.scripts.release, keys, args)
            out.extend(_freed(i, r) for i, r in zip(chunk, reply, strict=True))
        return out

    async def renew(self, ids: Sequence[str], now: float) -> list[bool]:
        deadline = int(now * 1000) + self._ttl_ms
        out: list[bool] = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            reply = await self.scripts.renew(keys=(self.keys.deadlines, self.keys.holdings),
                                             args=(deadline, *chunk))
            out.extend(bool(int(ok)) for ok in reply)
        return out

    async def recount(self) -> list[CounterFix]:
        k = self.keys
        reply = await self.scripts.recount(keys=(k.used, k.surcharged, k.deadlines, k.holdings))
        return [CounterFix(text(f[0]), text(f[1]), int(f[2]), int(f[3])) for f in reply]

    # -- reads and records -------------------------------------------------------------

    async def due(self, now: float, batch: int) -> list[str]:
        raw = await self.redis.zrangebyscore(self.keys.deadlines, "-inf", int(now * 1000),
                                             start=0, num=batch)
        return [text(i) for i in raw]

    async def get(self, lease_id: str) -> LeaseInfo | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(self.keys.holdings, lease_id)
        pipe.hgetall(self.keys.lease(lease_id))
        pipe.zscore(self.keys.deadlines, lease_id)
        held, fields, deadline = await pipe.execute()
        return _lease(lease_id, held, str_dict(fields), deadline)

    async def all(self) -> dict[str, LeaseInfo]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.holdings)
        pipe.zrange(self.keys.deadlines, 0, -1, withscores=True)
        holdings, deadlines = await pipe.execute()
        held = str_dict(holdings)
        deadline_of = {text(member): score for member, score in deadlines}
        ids = sorted(held)
        out: dict[str, LeaseInfo] = {}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            pipe = self.redis.pipeline(transaction=False)
            for lease_id in chunk:
                pipe.hgetall(self.keys.lease(lease_id))
            for lease_id, fields in zip(chunk, await pipe.execute(), strict=True):
                info = _lease(lease_id, held[lease_id], str_dict(fields),
                              deadline_of.get(lease_id))
                if info is not None:
                    out[lease_id] = info
        return out

    async def in_use(self) -> dict[str, int]:
        raw = await self.redis.hgetall(self.keys.used)
        counts = {text(k): as_int(v) for k, v in raw.items()}
        return {k: v for k, v in counts.items() if v}

    async def record_failopen(self, entry: JournalEntry, now: float) -> None:
        record = json.loads(entry.to_json())
        record["written_back_at"] = now
        await self.redis.hset(self.keys.failopen, entry.lease_id,
                              json.dumps(record, separators=(",", ":"), sort_keys=True))


def _lease(lease_id: str, held: Any, fields: dict[str, str], deadline: Any) -> LeaseInfo | None:
    if held is None or not fields:  # gone, or released between two reads
        return None
    scopes, _, surcharged = text(held).partition("|")
    created = fields.get("created")
    call_id, origin, flags = _meta(fields.get("meta", ""))
    return LeaseInfo(
        lease_id=lease_id,
        tenant=fields.get("tenant", ""),
        status=fields.get("status", ""),
        scopes=tuple(scopes.split()),
        surcharged=tuple(surcharged.split()),
        flags=flags,
        call_id=call_id,
        origin=origin,
        created=None if not created else as_int(created) / 1000,
        deadline=None if deadline is None else float(text(deadline)) / 1000,
    )


def _meta(meta: str) -> tuple[str, str, frozenset[str]]:
    """'call_id origin flag...' ('-' for an empty call id or origin)."""
    parts = meta.split()
    call_id = parts[0] if parts and parts[0] != "-" else ""
    origin = parts[1] if len(parts) > 1 and parts[1] != "-" else ""
    return call_id, origin, frozenset(parts[2:])


def _freed(lease_id: str, entry: Sequence[Any]) -> LeaseInfo | None:
    if int(entry[0]) != 1:
        return None
    call_id, origin, flags = _meta(text(entry[3]))
    return LeaseInfo(
        lease_id=lease_id,
        tenant=text(entry[1]),
        status=text(entry[2]),
        flags=flags,
        scopes=tuple(text(entry[4]).split()),
        call_id=call_id,
        origin=origin,
    )

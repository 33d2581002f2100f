"""Rate plans in Redis, shared by every gateway, cached in each with a version number.

A plan is stored as one zlib-compressed JSON value per version (`...:v:N`) and a meta hash
naming the current version. Import writes the new version first and then flips the meta in
one transaction, so a gateway never sees half a plan. Each gateway keeps the plan in memory
(`RatePlanCache`) and re-checks the version at most every `check_every` seconds: a new
import reaches all gateways within that time, and rating a call costs dict look-ups only.
The previous version is kept one import longer for gateways still loading it.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from prepaid import keys
from prepaid.clock import Clock
from prepaid.errors import PlanNotFound
from prepaid.rating import PlanSettings, RateEntry, RatePlan
from prepaid.scripts import RedisClient

log = structlog.get_logger(__name__)


def _s(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class PlanInfo:
    name: str
    version: int
    currency: str
    rows: int
    imported_ms: int


class RatePlanStore:
    def __init__(self, redis: RedisClient, clock: Clock) -> None:
        self._r = redis
        self._clock = clock

    async def save(
        self, name: str, settings: PlanSettings, entries: Iterable[RateEntry]
    ) -> PlanInfo:
        keys.check_id("plan name", name)
        rows = [e.to_json() for e in entries]
        blob = zlib.compress(
            json.dumps({"settings": settings.to_json(), "rows": rows}, separators=(",", ":"))
            .encode(),
            level=6,
        )
        meta = keys.plan_meta(name)
        version = int(await self._r.hincrby(meta, "next_version", 1))
        await self._r.set(keys.plan_blob(name, version), blob)
        now_ms = int(self._clock.now() * 1000)
        old = _s(await self._r.hget(meta, "version"))
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(meta, mapping={
                "version": version, "currency": settings.currency, "rows": len(rows),
                "imported_ms": now_ms,
            })
            if old and int(old) > 1:
                pipe.delete(keys.plan_blob(name, int(old) - 1))
            await pipe.execute()
        await self._r.sadd(keys.PLAN_NAMES, name)
        log.info("rateplan_imported", plan=name, version=version, rows=len(rows))
        return PlanInfo(name, version, settings.currency, len(rows), now_ms)

    async def info(self, name: str) -> PlanInfo:
        raw = await self._r.hgetall(keys.plan_meta(name))
        meta = {_s(k): _s(v) for k, v in raw.items()}
        if not meta.get("version"):
            raise PlanNotFound(name)
        return PlanInfo(
            name, int(meta["version"]), meta["currency"], int(meta["rows"]),
            int(meta["imported_ms"]),
        )

    async def version(self, name: str) -> int:
        v = _s(await self._r.hget(keys.plan_meta(name), "version"))
        if not v:
            raise PlanNotFound(name)
        return int(v)

    async def load(self, name: str) -> RatePlan:
        for _ in range(3):  # a newer import may delete the version we just read
            version = await self.version(name)
            blob = await self._r.get(keys.plan_blob(name, version))
            if blob is not None:
                data = blob if isinstance(blob, bytes) else blob.encode("latin-1")
                raw = json.loads(zlib.decompress(data))
                settings = PlanSettings.from_json(raw["settings"])
                return RatePlan(
                    name, version, settings, (RateEntry.from_json(r) for r in raw["rows"])
                )
        raise PlanNotFound(name)

    async def names(self) -> list[str]:
        return sorted(_s(n) for n in await self._r.smembers(keys.PLAN_NAMES))


class RatePlanCache:
    """Plans of this gateway, in memory; reloaded when Redis holds a newer version."""

    def __init__(self, store: RatePlanStore, clock: Clock, check_every: float = 5.0) -> None:
        self._store = store
        self._clock = clock
        self._check_every = check_every
        self._plans: dict[str, tuple[RatePlan, float]] = {}

    async def get(self, name: str) -> RatePlan:
        now = self._clock.now()
        cached = self._plans.get(name)
        if cached is not None and now - cached[1] < self._check_every:
            return cached[0]
        if cached is not None and await self._store.version(name) == cached[0].version:
            self._plans[name] = (cached[0], now)
            return cached[0]
        plan = await self._store.load(name)
        self._plans[name] = (plan, now)
        log.info("rateplan_loaded", plan=name, version=plan.version, rows=len(plan))
        return plan

    def invalidate(self, name: str | None = None) -> None:
        if name is None:
            self._plans.clear()
        else:
            self._plans.pop(name, None)

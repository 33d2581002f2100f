"""Supervisor controls on a running campaign.

A change is written to the campaign's hash; the runner re-reads the campaign at every
pacing tick, so it takes effect within one tick, on whichever gateway paces the campaign.
Every change is logged (`campaign_changed`, with `by=`) and kept in the campaign's audit
list in Redis, newest first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import structlog

from dialer.campaign import Campaign, CampaignError, DialMode
from dialer.campaign_store import CampaignStore, encode_campaign
from dialer.clock import Clock
from dialer.keys import CampaignKeys
from dialer.redis_types import RedisClient, text

log = structlog.get_logger(__name__)

AUDIT_KEEP = 1000


@dataclass(frozen=True)
class CampaignChange:
    at: float
    by: str
    field: str
    old: str
    new: str


class SupervisorControls:
    def __init__(self, redis: RedisClient, store: CampaignStore, clock: Clock) -> None:
        self._r = redis
        self._store = store
        self._clock = clock

    async def set_mode(self, tenant: str, campaign_id: str, mode: DialMode | str, *,
                       by: str) -> Campaign:
        try:
            value = DialMode(mode)
        except ValueError as exc:
            raise CampaignError(f"mode must be one of {[m.value for m in DialMode]}") from exc
        return await self._change(tenant, campaign_id, by, mode=value)

    async def set_abandon_target(self, tenant: str, campaign_id: str, target: float, *,
                                 by: str) -> Campaign:
        return await self._change(tenant, campaign_id, by, abandon_target=float(target))

    async def set_max_ratio(self, tenant: str, campaign_id: str, ratio: float, *,
                            by: str) -> Campaign:
        return await self._change(tenant, campaign_id, by, max_ratio=float(ratio))

    async def pause(self, tenant: str, campaign_id: str, *, by: str) -> Campaign:
        return await self._change(tenant, campaign_id, by, paused=True)

    async def resume(self, tenant: str, campaign_id: str, *, by: str) -> Campaign:
        return await self._change(tenant, campaign_id, by, paused=False)

    async def history(self, tenant: str, campaign_id: str,
                      limit: int = 100) -> list[CampaignChange]:
        keys = CampaignKeys(tenant, campaign_id)
        raw = await self._r.lrange(keys.changes, 0, limit - 1)
        out = []
        for item in raw:
            d = json.loads(text(item))
            out.append(CampaignChange(d["at"], d["by"], d["field"], d["old"], d["new"]))
        return out

    async def _change(self, tenant: str, campaign_id: str, by: str, **changes: Any) -> Campaign:
        if not by:
            raise CampaignError("a change needs `by` (who made it)")
        try:
            before, after = await self._store.update(tenant, campaign_id, **changes)
        except CampaignError as exc:
            log.warning("campaign_change_refused", tenant=tenant, campaign=campaign_id, by=by,
                        changes={k: str(v) for k, v in changes.items()}, reason=str(exc))
            raise
        old, new = encode_campaign(before), encode_campaign(after)
        now = self._clock.now()
        keys = CampaignKeys(tenant, campaign_id)
        pipe = self._r.pipeline(transaction=True)
        for name in changes:
            entry = {"at": now, "by": by, "field": name, "old": old[name], "new": new[name]}
            pipe.lpush(keys.changes, json.dumps(entry))
            log.info("campaign_changed", tenant=tenant, campaign=campaign_id, by=by,
                     field=name, old=old[name], new=new[name])
        pipe.ltrim(keys.changes, 0, AUDIT_KEEP - 1)
        await pipe.execute()
        return after

"""Campaigns in Redis: one hash per campaign, one field per setting.

One field per setting (not one JSON blob) so that a supervisor changing the abandon
target and another pausing the campaign at the same moment do not overwrite each other.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from datetime import time
from typing import Any

import structlog

from dialer.campaign import (
    AbandonWindow,
    CallingWindow,
    Campaign,
    CampaignError,
    DialMode,
    RetryDelays,
)
from dialer.keys import ALL_CAMPAIGNS, CampaignKeys, tenant_campaigns
from dialer.redis_types import RedisClient, str_dict, text

log = structlog.get_logger(__name__)


class CampaignNotFound(LookupError):
    pass


def _encode(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if value is None:
        return ""
    if isinstance(value, RetryDelays):
        return json.dumps({f.name: getattr(value, f.name) for f in fields(value)})
    if isinstance(value, CallingWindow):
        return json.dumps({"start": value.start.strftime("%H:%M"),
                           "end": value.end.strftime("%H:%M"),
                           "weekdays": sorted(value.weekdays)})
    return str(value.value if hasattr(value, "value") else value)


def encode_campaign(c: Campaign) -> dict[str, str]:
    return {f.name: _encode(f.name, getattr(c, f.name)) for f in fields(c)}


def _time(value: str) -> time:
    hh, _, mm = value.partition(":")
    return time(int(hh), int(mm or 0))


def decode_campaign(raw: dict[str, str]) -> Campaign:
    """Build a campaign from stored (or user-supplied) string fields; CampaignError if bad."""
    try:
        kw: dict[str, Any] = {}
        for f in fields(Campaign):
            if f.name not in raw:
                continue
            v = raw[f.name]
            if f.name in ("tenant", "campaign_id", "name", "trunk", "dial_string", "caller_id",
                          "agent_queue", "default_region"):
                kw[f.name] = v
            elif f.name == "mode":
                kw[f.name] = DialMode(v)
            elif f.name == "abandon_window":
                kw[f.name] = AbandonWindow(v)
            elif f.name == "fallback_timezone":
                kw[f.name] = v or None
            elif f.name == "paused":
                kw[f.name] = v in ("1", "true", "yes")
            elif f.name in ("dial_timeout_s", "max_attempts", "max_channels"):
                kw[f.name] = int(v)
            elif f.name == "retry":
                kw[f.name] = RetryDelays(**{k: int(x) for k, x in json.loads(v).items()})
            elif f.name == "window":
                w = json.loads(v)
                kw[f.name] = CallingWindow(_time(w["start"]), _time(w["end"]),
                                           frozenset(int(d) for d in w.get("weekdays",
                                                                            range(7))))
            else:
                kw[f.name] = float(v)
        return Campaign(**kw)
    except CampaignError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise CampaignError(f"bad campaign field: {exc}") from exc


class CampaignStore:
    def __init__(self, redis: RedisClient) -> None:
        self._r = redis

    async def put(self, campaign: Campaign) -> None:
        keys = CampaignKeys(campaign.tenant, campaign.campaign_id)
        mapping: dict[Any, Any] = encode_campaign(campaign)
        await self._r.hset(keys.config, mapping=mapping)
        await self._r.sadd(tenant_campaigns(campaign.tenant),
                           campaign.campaign_id)
        await self._r.sadd(ALL_CAMPAIGNS, f"{campaign.tenant}:{campaign.campaign_id}")
        log.info("campaign_saved", tenant=campaign.tenant, campaign=campaign.campaign_id,
                 mode=campaign.mode.value)

    async def get(self, tenant: str, campaign_id: str) -> Campaign | None:
        keys = CampaignKeys(tenant, campaign_id)
        raw = str_dict(await self._r.hgetall(keys.config))
        if not raw:
            return None
        if raw.get("tenant") != tenant:  # never hand one tenant's campaign to another
            log.error("campaign_tenant_mismatch", tenant=tenant, campaign=campaign_id)
            return None
        return decode_campaign(raw)

    async def require(self, tenant: str, campaign_id: str) -> Campaign:
        c = await self.get(tenant, campaign_id)
        if c is None:
            raise CampaignNotFound(f"no campaign {campaign_id!r} for tenant {tenant!r}")
        return c

    async def list(self, tenant: str) -> list[Campaign]:
        ids = sorted(text(x) for x in await self._r.smembers(
            tenant_campaigns(tenant)))
        out = []
        for cid in ids:
            c = await self.get(tenant, cid)
            if c is not None:
                out.append(c)
        return out

    async def all_ids(self) -> tuple[tuple[str, str], ...]:
        """(tenant, campaign_id) of every campaign of every tenant, sorted."""
        pairs = (text(m).partition(":") for m in await self._r.smembers(ALL_CAMPAIGNS))
        return tuple(sorted((t, c) for t, _, c in pairs if t and c))

    async def update(self, tenant: str, campaign_id: str, **changes: Any) -> tuple[Campaign,
                                                                                    Campaign]:
        """Change some settings; validated as a whole, written field by field.

        Returns (before, after). Raises CampaignError for an invalid result.
        """
        before = await self.require(tenant, campaign_id)
        if {"tenant", "campaign_id"} & changes.keys():
            raise CampaignError("tenant and campaign_id cannot be changed")
        after = replace(before, **changes)
        encoded = encode_campaign(after)
        keys = CampaignKeys(tenant, campaign_id)
        mapping: dict[Any, Any] = {k: encoded[k] for k in changes}
        await self._r.hset(keys.config, mapping=mapping)
        return before, after

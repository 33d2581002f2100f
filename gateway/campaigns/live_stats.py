"""A campaign's live figures, as the gateway pacing it last saw them.

Agent states and calls in flight live in the pacing gateway's memory; once a second it
writes them to Redis (short TTL) so `callgate campaign stats` on any host can show them,
and publishes them on MQTT (`callgate/<site>/events/campaign/<id>/stats`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from dialer.keys import CampaignKeys
from dialer.redis_types import RedisClient, text
from dialer.stats import CampaignStats

STATS_TTL_S = 10


def stats_key(tenant: str, campaign_id: str) -> str:
    return f"{CampaignKeys(tenant, campaign_id).prefix}:live_stats"


def stats_payload(stats: CampaignStats, placements: dict[str, int]) -> dict[str, Any]:
    body = asdict(stats)
    for name, value in body.items():
        if isinstance(value, float):
            body[name] = round(value, 4)
    body["placements"] = dict(placements)
    return body


def mqtt_kind(campaign_id: str) -> str:
    """The publisher turns dots into topic levels: a dotted id keeps one level."""
    return f"campaign.{campaign_id.replace('.', '_')}.stats"


async def write_stats(redis: RedisClient, tenant: str, campaign_id: str,
                      payload: dict[str, Any]) -> None:
    await redis.set(stats_key(tenant, campaign_id), json.dumps(payload), ex=STATS_TTL_S)


async def read_stats(redis: RedisClient, tenant: str,
                     campaign_id: str) -> dict[str, Any] | None:
    raw = await redis.get(stats_key(tenant, campaign_id))
    if raw is None:
        return None
    try:
        body = json.loads(text(raw))
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def stats_from_payload(body: dict[str, Any]) -> CampaignStats | None:
    """The snapshot back as CampaignStats; None if it is not one this version wrote."""
    try:
        return CampaignStats(**{f.name: body[f.name] for f in fields(CampaignStats)})
    except (KeyError, TypeError):
        return None

"""Campaign definitions: validation, storage round trip, rolling abandon window."""

from __future__ import annotations

from datetime import time

import pytest
import redis.asyncio as aioredis

from dialer.campaign import AbandonWindow, CallingWindow, Campaign, CampaignError, DialMode
from dialer.campaign_store import CampaignStore, decode_campaign, encode_campaign
from dialer.window import Counter, RollingCounts


def test_every_setting_survives_the_store(redis_client: aioredis.Redis) -> None:
    c = Campaign("acme", "spring-2026", mode=DialMode.PREDICTIVE, trunk="carrier-a",
                 dial_string="PJSIP/{number}@carrier-a", caller_id="+12125550000",
                 agent_queue="sales", window=CallingWindow(time(8, 30), time(20, 0),
                                                           frozenset({0, 1, 2, 3, 4})),
                 fallback_timezone="America/Chicago", abandon_target=0.01,
                 abandon_window=AbandonWindow.ROLLING_30D, paused=True)
    assert decode_campaign(encode_campaign(c)) == c
    assert c.dial_target("+12125550100") == "PJSIP/+12125550100@carrier-a"


async def test_store_round_trip_and_tenant_listing(redis_client: aioredis.Redis) -> None:
    store = CampaignStore(redis_client)
    c = Campaign("acme", "c1", agent_queue="sales")
    await store.put(c)
    assert await store.get("acme", "c1") == c
    assert [x.campaign_id for x in await store.list("acme")] == ["c1"]
    assert await store.list("globex") == []


@pytest.mark.parametrize("kw", [
    {"campaign_id": "a}b"}, {"tenant": ""}, {"abandon_target": 0.9},
    {"max_ratio": 0.5}, {"connect_within_s": 0.0}, {"fallback_timezone": "Mars/Base"},
    {"dial_timeout_s": 0}, {"max_attempts": 0},
])
def test_bad_settings_are_refused_with_a_clear_error(kw: dict[str, object]) -> None:
    base: dict[str, object] = {"tenant": "acme", "campaign_id": "c1"}
    base.update(kw)
    with pytest.raises(CampaignError):
        Campaign(**base)  # type: ignore[arg-type]


def test_calling_window_must_not_wrap_midnight() -> None:
    with pytest.raises(CampaignError, match="before end"):
        CallingWindow(time(21), time(9))


def test_a_stored_campaign_with_garbage_fields_is_an_error_not_a_crash() -> None:
    raw = encode_campaign(Campaign("acme", "c1"))
    raw["max_attempts"] = "many"
    with pytest.raises(CampaignError, match="bad campaign field"):
        decode_campaign(raw)


def test_abandon_rate_rolls_with_its_window() -> None:
    w = RollingCounts(AbandonWindow.ROLLING_24H)
    w.add(Counter.LIVE, 0.0, 100)
    w.add(Counter.ABANDONED, 0.0, 5)
    w.add(Counter.LIVE, 50_000.0, 100)
    assert w.rate(Counter.ABANDONED, Counter.LIVE, 60_000.0) == pytest.approx(0.025)
    # A day and a bucket later the first hundred calls have left the window.
    assert w.rate(Counter.ABANDONED, Counter.LIVE, 86_400.0 + 301.0) == 0.0
    assert w.total(Counter.LIVE, 86_400.0 + 301.0) == 100
    assert sorted(w.prune(86_400.0 + 301.0)) == ["a:0", "x:0"]

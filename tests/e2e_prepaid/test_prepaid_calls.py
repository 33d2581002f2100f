"""The gateway side of prepaid cards: what the authorize route sets for `card=`."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.agi import AgiRequest
from gateway.prepaid_calls import PrepaidCalls
from limits import CallRequest
from tests.support.servers import RedisServer


def _agi(card: str, dest: str) -> AgiRequest:
    return AgiRequest(
        env={"agi_network_script": f"authorize?card={card}"}, route="authorize",
        args={"card": card, "tenant": "t1", "direction": "out"}, call_id="1700000000.1",
        channel="SIP/100-00000001", caller="100", extension=dest,
    )


def _call(dest: str) -> CallRequest:
    return CallRequest(tenant="t1", direction="out", dest=dest,  # type: ignore[arg-type]
                       call_id="1700000000.1", origin="ast1")


async def test_unknown_card_is_denied_card_blocked(redis_client: aioredis.Redis,
                                                   redis_proc: RedisServer) -> None:
    calls = PrepaidCalls(redis_client, "site1", {}, redis_url=redis_proc.url,
                         is_emergency=lambda n: n == "112")
    decision = await calls.authorize_card(_agi("999999", "4420"), _call("4420"), "999999")
    assert (decision.result, decision.reason, decision.lease) == ("DENY", "card_blocked", "")


async def test_redis_down_denies_backend_unavailable_but_lets_emergency_through() -> None:
    dead = aioredis.Redis(port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    calls = PrepaidCalls(dead, "site1", {}, redis_url="redis://127.0.0.1:1/0",
                         is_emergency=lambda n: n == "112")
    denied = await calls.authorize_card(_agi("123456", "4420"), _call("4420"), "123456")
    assert (denied.result, denied.reason, denied.cause) == ("DENY", "backend_unavailable", 41)
    allowed = await calls.authorize_card(_agi("123456", "112"), _call("112"), "123456")
    assert (allowed.result, allowed.reason) == ("ALLOW", "emergency")
    await dead.aclose()

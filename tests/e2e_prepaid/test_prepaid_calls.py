"""The gateway side of prepaid cards: what the authorize route sets for `card=`."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.agi import AgiRequest, Decision
from gateway.prepaid_calls import PrepaidCalls
from limits import CallRequest, EmergencyNumbers, LimitsService
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


async def test_unknown_card_is_denied_card_blocked_and_its_slot_given_back(
    redis_client: aioredis.Redis, redis_proc: RedisServer
) -> None:
    limits = LimitsService(redis_client, "site1", emergency=EmergencyNumbers(["112"]))
    calls = PrepaidCalls(redis_client, "site1", {}, limits, redis_url=redis_proc.url,
                         is_emergency=lambda n: n == "112")
    granted = await limits.authorize(_call("4420"))
    assert granted.allowed
    ok = Decision("ALLOW", "ok", 0, granted.lease_id, 0)
    decision = await calls.authorize_card(_agi("999999", "4420"), _call("4420"), "999999", ok)
    assert (decision.result, decision.reason, decision.lease) == ("DENY", "card_blocked", "")
    assert (await limits.settings.show_tenant("t1")).total.in_use == 0
    await calls.close()


async def test_redis_down_denies_backend_unavailable_but_lets_emergency_through() -> None:
    dead = aioredis.Redis(port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    limits = LimitsService(dead, "site1", emergency=EmergencyNumbers(["112"]))
    calls = PrepaidCalls(dead, "site1", {}, limits, redis_url=None,
                         is_emergency=lambda n: n == "112")
    ok = Decision("ALLOW", "ok", 0, "0123456789abcdef", 0)
    denied = await calls.authorize_card(_agi("123456", "4420"), _call("4420"), "123456", ok)
    assert (denied.result, denied.reason, denied.cause) == ("DENY", "backend_unavailable", 41)
    sos = Decision("ALLOW", "emergency", 0, "0123456789abcdef", 0)
    allowed = await calls.authorize_card(_agi("123456", "112"), _call("112"), "123456", sos)
    assert (allowed.result, allowed.reason) == ("ALLOW", "emergency")
    await dead.aclose()

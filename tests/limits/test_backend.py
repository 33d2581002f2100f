"""Redis unreachable or restarted (the AOF fixture): the configured policy, nothing granted
without a record, counters still exact afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from limits import (
    BackendUnavailable,
    FailOpenJournal,
    LimitsService,
    Reason,
    Result,
)
from tests.limits.conftest import (
    EMERGENCY,
    SITE,
    FakeClock,
    assert_counters_exact,
    out_call,
    used,
    wait_ready,
)
from tests.support.servers import RedisServer


def gateway(client: aioredis.Redis, clock: FakeClock, **kw: object) -> LimitsService:
    return LimitsService(client, SITE, emergency=EMERGENCY, clock=clock, lease_ttl=30.0,
                         **kw)  # type: ignore[arg-type]


async def test_restart_after_kill_keeps_counters_exact(
    redis_aof: RedisServer, aof_client: aioredis.Redis, clock: FakeClock,
) -> None:
    service = gateway(aof_client, clock)
    await service.load_scripts()
    await service.settings.set_trunk_limit("pri1", 5)
    leases = [(await service.authorize(out_call(trunk="pri1"))).lease_id for _ in range(5)]
    await service.release(leases.pop(), by="hangup")
    before = await assert_counters_exact(service)
    redis_aof.stop(kill=True)  # kill -9: only what reached the AOF survives
    down = await service.authorize(out_call(trunk="pri1"))
    assert (down.result, down.reason, down.cause) == (Result.DENY, Reason.BACKEND_UNAVAILABLE, 41)
    redis_aof.start()
    await wait_ready(aof_client)
    assert await service.in_use() == before  # the script cache is empty: NOSCRIPT, reload
    assert (await service.authorize(out_call(trunk="pri1"))).allowed
    assert (await service.authorize(out_call(trunk="pri1"))).reason is Reason.TRUNK_FULL
    for lease_id in leases:
        assert await service.release(lease_id, by="hangup")
    await assert_counters_exact(service)
    assert (await used(service))["trunk/pri1"] == 1


async def test_fail_closed_refuses_but_lets_emergency_through_and_records_it(
    redis_aof: RedisServer, aof_client: aioredis.Redis, clock: FakeClock,
) -> None:
    service = gateway(aof_client, clock)
    await service.settings.set_tenant_limit("acme", "outbound", 1)
    redis_aof.stop()
    with capture_logs() as logs:
        refused = await service.authorize(out_call())
        emergency = await service.authorize(out_call(dest="112", call_id="sos"))
    assert (refused.result, refused.reason, refused.lease_id) == (
        Result.DENY, Reason.BACKEND_UNAVAILABLE, "")
    assert (emergency.result, emergency.reason, emergency.journaled) == (
        Result.ALLOW, Reason.EMERGENCY, True)
    assert emergency.lease_id and emergency.never_charge
    events = [e["event"] for e in logs]
    assert events == ["limits_backend_unavailable", "limit_denied", "limit_emergency"]
    assert len(service.journal) == 1
    # a journaled lease counts as renewed: it is written back with a fresh deadline
    assert (await service.renew([emergency.lease_id])).renewed == (emergency.lease_id,)
    redis_aof.start()
    await wait_ready(aof_client)
    assert await service.flush_journal() == 1
    lease = await service.lease(emergency.lease_id)
    assert lease is not None and {"fail_open", "emergency"} <= lease.flags
    record = json.loads(await aof_client.hget(service.keys.failopen, emergency.lease_id))
    assert record["request"]["call_id"] == "sos" and record["reason"] == "emergency"
    assert (await used(service))["tenant/acme/outbound"] == 1
    assert (await service.authorize(out_call())).reason is Reason.TENANT_LIMIT
    assert await service.release(emergency.lease_id, by="hangup")
    assert await used(service) == {}


async def test_fail_open_allows_journals_and_writes_back_when_redis_returns(
    redis_aof: RedisServer, aof_client: aioredis.Redis, clock: FakeClock,
) -> None:
    service = gateway(aof_client, clock, backend_policy="fail_open")
    await service.settings.set_trunk_limit("pri1", 1)
    redis_aof.stop()
    with capture_logs() as logs:
        a = await service.authorize(out_call(trunk="pri1", call_id="a"))
        b = await service.authorize(out_call(trunk="pri1", call_id="b"))
    assert a.allowed and b.allowed and a.journaled and b.journaled
    assert a.reason is Reason.OK and a.lease_id != b.lease_id
    assert [e["event"] for e in logs].count("limit_fail_open") == 2
    assert not await service.release(b.lease_id, by="hangup")  # deferred, journaled
    assert len(service.journal) == 3
    redis_aof.start()
    await wait_ready(aof_client)
    # the next call is decided by Redis and writes the journal back
    c = await service.authorize(out_call(trunk="pri1", call_id="c"))
    assert c.reason is Reason.OK  # b's slot came back; a holds the trunk's one channel ...
    assert len(service.journal) == 0
    records = await aof_client.hgetall(service.keys.failopen)
    assert {k.decode() for k in records} == {a.lease_id, b.lease_id}
    assert (await used(service))["trunk/pri1"] == 2  # ... and c was counted before a arrived
    assert (await service.authorize(out_call(trunk="pri1"))).reason is Reason.TRUNK_FULL
    lease = await service.lease(a.lease_id)
    assert lease is not None and "fail_open" in lease.flags
    await service.release(a.lease_id, by="hangup")
    await service.release(c.lease_id, by="hangup")
    assert await used(service) == {}


async def test_journal_file_survives_a_gateway_restart_during_the_outage(
    redis_aof: RedisServer, aof_client: aioredis.Redis, clock: FakeClock, tmp_path: Path,
) -> None:
    path = tmp_path / "failopen.jsonl"
    first = gateway(aof_client, clock, backend_policy="fail_open",
                    journal=FailOpenJournal(path))
    redis_aof.stop()
    d = await first.authorize(out_call(device="d1", pools=("seat",)))
    assert d.journaled
    # the gateway restarts before Redis is back
    second = gateway(aof_client, clock, backend_policy="fail_open",
                     journal=FailOpenJournal(path))
    assert [e.lease_id for e in second.journal.entries] == [d.lease_id]
    redis_aof.start()
    await wait_ready(aof_client)
    assert await second.flush_journal() == 1
    assert path.read_text() == ""
    assert set((await second.lease(d.lease_id) or pytest.fail("no lease")).scopes) == set(
        ["device/acme/d1", "pool/acme/seat", "tenant/acme/outbound", "tenant/acme/total"])


async def test_a_release_that_could_not_reach_redis_is_replayed(
    redis_aof: RedisServer, aof_client: aioredis.Redis, clock: FakeClock,
) -> None:
    service = gateway(aof_client, clock)
    d = await service.authorize(out_call(trunk="t"))
    redis_aof.stop()
    assert not await service.release(d.lease_id, by="hangup")
    redis_aof.start()
    await wait_ready(aof_client)
    assert await service.flush_journal() == 1
    assert await used(service) == {}
    assert not await service.release(d.lease_id, by="release_hook")


async def test_no_lease_expires_until_a_ttl_after_redis_came_back(
    redis_aof: RedisServer, aof_client: aioredis.Redis, clock: FakeClock,
) -> None:
    service = gateway(aof_client, clock)
    d = await service.authorize(out_call())
    redis_aof.stop()
    with pytest.raises(BackendUnavailable):
        await service.renew([d.lease_id])
    clock.advance(service.lease_ttl * 2)  # the outage outlasts the lease
    redis_aof.start()
    await wait_ready(aof_client)
    await service.authorize(out_call("other"))  # Redis answers again
    assert await service.expire_due() == []  # paused: nobody could renew meanwhile
    clock.advance(service.lease_ttl + 1)
    assert (await service.renew([d.lease_id])).renewed == (d.lease_id,)  # d's gateway is back
    expired = await service.expire_due()
    assert [x.tenant for x in expired] == ["other"]  # nobody renewed this one
    assert await service.lease(d.lease_id) is not None


async def test_maintenance_operations_raise_backend_unavailable(
    redis_aof: RedisServer, aof_client: aioredis.Redis, clock: FakeClock,
) -> None:
    service = gateway(aof_client, clock)
    redis_aof.stop()
    for op in (service.expire_due(), service.reconcile(set()), service.leases(),
               service.settings.set_trunk_limit("t", 3), service.settings.show_tenant("x")):
        with pytest.raises(BackendUnavailable):
            await op


async def test_a_sweep_that_is_first_to_see_redis_back_expires_nothing(
    redis_aof: RedisServer, aof_client: aioredis.Redis, clock: FakeClock,
) -> None:
    service = gateway(aof_client, clock)
    await service.authorize(out_call())
    redis_aof.stop()
    with pytest.raises(BackendUnavailable):
        await service.expire_due()
    clock.advance(service.lease_ttl * 2)
    redis_aof.start()
    await wait_ready(aof_client)
    assert await service.expire_due() == []
    clock.advance(service.lease_ttl + 0.5)
    assert len(await service.expire_due()) == 1


async def test_policy_changes_at_run_time(
    redis_aof: RedisServer, aof_client: aioredis.Redis, clock: FakeClock,
) -> None:
    service = gateway(aof_client, clock)
    redis_aof.stop()
    assert (await service.authorize(out_call())).reason is Reason.BACKEND_UNAVAILABLE
    service.set_backend_policy("fail_open")
    assert (await service.authorize(out_call())).journaled
    with pytest.raises(ValueError):
        service.set_backend_policy("fail_sideways")
    assert service.backend_policy.value == "fail_open"

"""Exact counters under concurrency: many tasks, several gateways (clients), interleaved
releases, renewals and expiry."""

from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from limits import LimitsService, Reason
from tests.limits.conftest import (
    EMERGENCY,
    SITE,
    FakeClock,
    MakeService,
    Pooled,
    assert_counters_exact,
    out_call,
    used,
)
from tests.support.servers import RedisServer


@pytest.mark.parametrize(("limit", "callers"), [(1, 50), (37, 400), (250, 1000)])
async def test_exactly_n_of_m_simultaneous_calls_win(
    pooled: Pooled, make_service: MakeService, limit: int, callers: int,
) -> None:
    gateways = [make_service(pooled()) for _ in range(4)]  # four gateways, 16 connections each
    await gateways[0].settings.set_tenant_limit("acme", "total", limit)
    decisions = await asyncio.gather(*(
        gateways[i % 4].authorize(out_call(trunk="pri1", call_id=f"c{i}"))
        for i in range(callers)
    ))
    winners = [d for d in decisions if d.allowed]
    assert len(winners) == limit
    assert all(d.reason is Reason.TENANT_LIMIT for d in decisions if not d.allowed)
    assert len({d.lease_id for d in winners}) == limit
    assert (await used(gateways[0]))["tenant/acme/total"] == limit
    # every call released twice, from different gateways at once
    freed = await asyncio.gather(*(
        gateways[(i + k) % 4].release(d.lease_id, by=by)
        for i, d in enumerate(winners) for k, by in enumerate(("hangup", "release_hook"))
    ))
    assert sum(freed) == limit
    assert await used(gateways[0]) == {}


async def test_release_racing_expiry_frees_once(
    pooled: Pooled, make_service: MakeService, clock: FakeClock,
) -> None:
    service, sweeper = make_service(pooled()), make_service(pooled())
    leases = [(await service.authorize(out_call(trunk="t1"))).lease_id for _ in range(200)]
    clock.advance(service.lease_ttl + 1)
    results = await asyncio.gather(
        sweeper.expire_due(batch=7),
        *(service.release(lease_id, by="hangup") for lease_id in leases),
        sweeper.expire_due(batch=13),
    )
    expired = [lease.lease_id for r in (results[0], results[-1]) for lease in r]  # type: ignore[union-attr]
    released = [lid for lid, ok in zip(leases, results[1:-1], strict=True) if ok]
    assert sorted(expired + released) == sorted(leases)
    assert await used(service) == {}


async def test_renewal_racing_expiry_never_frees_a_renewed_call(
    pooled: Pooled, make_service: MakeService, clock: FakeClock,
) -> None:
    service, sweeper = make_service(pooled()), make_service(pooled())
    leases = [(await service.authorize(out_call())).lease_id for _ in range(100)]
    clock.advance(service.lease_ttl)  # due right now
    report, expired = await asyncio.gather(service.renew(leases), sweeper.expire_due(batch=9))
    # each lease was either renewed first (and survives) or expired first (and is gone)
    assert sorted(report.renewed + tuple(x.lease_id for x in expired)) == sorted(leases)
    assert set(report.gone) == {x.lease_id for x in expired}
    assert len(await service.leases()) == len(report.renewed)
    await assert_counters_exact(service)


OPS = ("call", "call", "call", "emergency", "hangup", "double_hangup", "crash", "tick",
       "late_hangup")


async def _scenario(url: str, ops: list[tuple[str, int]], seed: int) -> None:
    rng = random.Random(seed)
    clock = FakeClock()
    clients = [aioredis.Redis.from_url(url) for _ in range(2)]
    try:
        await clients[0].flushall()
        gws = [LimitsService(c, SITE, emergency=EMERGENCY, clock=clock, lease_ttl=10.0)
               for c in clients]
        s = gws[0].settings
        await s.set_reseller("a", "r")
        await s.set_reseller("b", "r")
        await s.set_tenant_limit("r", "total", 4)
        await s.set_tenant_limit("a", "outbound", 2)
        await s.set_trunk_limit("t", 3)
        await s.set_tenant_policy("b", "surcharge")
        await s.set_tenant_limit("b", "total", 1, hard_max=2)
        alive: list[str] = []  # calls up, renewed by their gateway
        dead: list[str] = []  # calls whose gateway crashed: nobody renews or releases them
        emergencies = 0

        async def run(op: str, n: int) -> None:
            nonlocal emergencies
            gw = gws[n % 2]
            if op in ("call", "emergency"):
                dest = "112" if op == "emergency" else "4930123"
                d = await gw.authorize(out_call("ab"[n % 2], trunk="t", dest=dest))
                if d.allowed:
                    alive.append(d.lease_id)
                    emergencies += d.emergency
            elif op in ("hangup", "double_hangup") and alive:
                lid = alive.pop(n % len(alive))
                tries = 2 if op == "double_hangup" else 1
                done = await asyncio.gather(*(gws[k % 2].release(lid, by="x")
                                              for k in range(n, n + tries)))
                assert sum(done) == 1
            elif op == "crash" and alive:
                dead.append(alive.pop(n % len(alive)))
            elif op == "tick":  # runs alone: time moves
                report, _ = await asyncio.gather(gw.renew(list(alive)), gws[1 - n % 2].expire_due())
                assert report.gone == ()
                clock.advance(6.0)
            elif op == "late_hangup" and alive:  # runs alone: time moves
                lid = alive.pop(n % len(alive))
                await gw.renew(alive)
                clock.advance(5.0)
                await gw.renew(alive)  # everyone but lid, whose deadline now passes
                clock.advance(5.001)
                freed, expired = await asyncio.gather(gw.release(lid, by="hangup"),
                                                      gws[1 - n % 2].expire_due())
                assert freed + [x.lease_id for x in expired].count(lid) == 1

        i = 0
        while i < len(ops):
            batch = ops[i:i + rng.randint(1, 4)]
            i += len(batch)
            moving = [(op, n) for op, n in batch if op in ("tick", "late_hangup")]
            await asyncio.gather(*(run(op, n) for op, n in batch if (op, n) not in moving))
            for op, n in moving:
                await run(op, n)
            counts = await assert_counters_exact(gws[0])
            if emergencies == 0:
                assert counts.get("tenant/r/total", 0) <= 4
                assert counts.get("trunk/t", 0) <= 3
                assert counts.get("tenant/b/total", 0) <= 2
            held = {x.lease_id for x in await gws[0].leases()}
            assert set(alive) <= held
        # everything ends: hangups (some twice) and the sweeper for crashed calls
        await asyncio.gather(*(gws[k % 2].release(lid, by="x")
                               for k, lid in enumerate(alive + alive[::2])))
        clock.advance(100)
        await gws[0].expire_due()
        assert await used(gws[0]) == {}
        assert await gws[0].leases() == []
    finally:
        for c in clients:
            await c.aclose()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 50)), max_size=40),
       seed=st.integers(0, 2**16))
def test_random_interleavings_keep_every_counter_exact(
    redis_proc: RedisServer, ops: list[tuple[str, int]], seed: int,
) -> None:
    asyncio.run(_scenario(redis_proc.url, ops, seed))

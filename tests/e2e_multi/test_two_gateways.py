"""Two gateways, one Redis, one Asterisk: any gateway serves any AGI request and every
call is counted once; exactly one gateway is the Asterisk's event owner; when it is
killed the other takes over within seconds and its reconciliation frees what no gateway
saw end, so the counters equal the live calls again."""

from __future__ import annotations

import asyncio
import signal

from limits import CallRequest, Direction
from tests.e2e_multi.conftest import ASTERISK, Farm

TAKEOVER_S = 6.0  # event owner ttl 3 s: renewed every 1 s, taken over <= ~4 s after death


async def spread_calls(farm: Farm, count: int) -> list:  # type: ignore[type-arg]
    calls = [farm.place("ab"[i % 2]) for i in range(count)]
    results = await asyncio.gather(*(farm.decided(c) for c in calls))
    assert results == ["ALLOW"] * count
    return calls


async def test_requests_spread_over_two_gateways_are_counted_once_and_one_owns_events(
    farm: Farm,
) -> None:
    await farm.start("a")
    await farm.start("b")
    owner, _ = await farm.wait_owner(10.0)
    calls = await spread_calls(farm, 20)
    await farm.wait_in_use(20, 10.0)
    served = {n: gw.metric("callgate_agi_requests_total", route="authorize")
              for n, gw in farm.gateways.items()}
    assert served == {"a": 10.0, "b": 10.0}
    # exactly one owner, and /metrics says so too
    assert await farm.owners() == [owner]
    gauges = {n: gw.metric("callgate_event_owner", asterisk=ASTERISK)
              for n, gw in farm.gateways.items()}
    assert sorted(gauges.values()) == [0.0, 1.0] and gauges[owner] == 1.0

    for call in calls[:8]:  # hang-ups seen by both gateways release once
        farm.hang_up(call)
    await farm.wait_in_use(12, 10.0)
    for call in calls[8:]:
        farm.hang_up(call)
    await farm.wait_in_use(0, 10.0)


async def test_kill9_of_the_owner_the_other_takes_over_and_reconciles(farm: Farm) -> None:
    await farm.start("a")
    await farm.start("b")
    owner, _ = await farm.wait_owner(10.0)
    other = "b" if owner == "a" else "a"
    calls = await spread_calls(farm, 16)
    await farm.wait_in_use(16, 10.0)
    # A call whose end no gateway saw (its lease is in Redis, no channel holds it).
    ghost = await farm.limits.authorize(CallRequest(
        "acme", Direction.OUT, trunk="e1-1", call_id="ghost", origin=ASTERISK))
    assert ghost.allowed
    await farm.wait_in_use(17, 5.0)

    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    await farm.kill(owner)
    # ... and the AMI socket drops: calls end while no gateway owns or hears anything
    port = farm.sim.ami.port
    await farm.sim.ami.stop()
    for call in calls[:6]:
        farm.hang_up(call)
    await asyncio.sleep(0.3)
    farm.sim.ami.port = port
    await farm.sim.ami.start()

    new_owner, _ = await farm.wait_owner(TAKEOVER_S + 4, among=(other,))
    took = loop.time() - killed_at
    assert new_owner == other and took < TAKEOVER_S, f"takeover took {took:.1f}s"
    await farm.wait_in_use(10, 10.0)  # 16 - 6 ended - and the ghost is freed

    survivor = farm.gateways[other]
    assert survivor.proc is not None
    events = survivor.proc.log_events()
    assert any(e["event"] == "event_owner_acquired" and e.get("asterisk") == ASTERISK
               for e in events)
    freed = {lease for e in events if e["event"] == "reconcile_fixed"
             for lease in e.get("freed", [])}
    assert ghost.lease_id in freed, "the new owner's reconciliation frees the ghost"

    for call in calls[6:]:
        farm.hang_up(call)
    await farm.wait_in_use(0, 10.0)


async def test_clean_shutdown_hands_ownership_over_at_once(farm: Farm) -> None:
    await farm.start("a")
    await farm.start("b")
    owner, _ = await farm.wait_owner(10.0)
    other = "b" if owner == "a" else "a"
    proc = farm.gateways[owner].proc
    assert proc is not None
    loop = asyncio.get_running_loop()
    stopped_at = loop.time()
    proc.signal(signal.SIGTERM)
    await asyncio.to_thread(proc.wait_exit, 15.0)
    await farm.wait_owner(5.0, among=(other,))
    assert loop.time() - stopped_at < 3.0  # no waiting out the 3 s ttl after it gave up
    assert any(e["event"] == "event_owner_lost" and e.get("reason") == "shutdown"
               for e in proc.log_events())


async def test_two_gateways_on_the_redis_cluster(cluster_farm: Farm) -> None:
    farm = cluster_farm
    await farm.start("a")
    await farm.start("b")
    owner, _ = await farm.wait_owner(10.0)
    other = "b" if owner == "a" else "a"
    calls = await spread_calls(farm, 10)
    await farm.wait_in_use(10, 10.0)

    await farm.kill(owner)
    for call in calls[:4]:
        farm.hang_up(call)
    await farm.wait_owner(TAKEOVER_S + 4, among=(other,))
    await farm.wait_in_use(6, 10.0)
    for call in calls[4:]:
        farm.hang_up(call)
    await farm.wait_in_use(0, 10.0)

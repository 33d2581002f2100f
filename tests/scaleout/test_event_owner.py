"""Event ownership between gateways (gateway/event_owner.py), on a real Redis and on the
3-master cluster: one owner per Asterisk, a dead owner is replaced within about a ttl,
a clean shutdown hands over at once, and every new owner gets a higher epoch."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, generate_latest

from gateway.event_owner import EventOwnership, gateway_identity, readiness_checks
from gateway.redis_connect import RedisClient
from tests.scaleout.conftest import MakeClient, ScriptLedger
from tests.support.servers import RedisServer

EVENT_OWNER_SCRIPTS = {"gateway/event_owner_claim.lua", "gateway/event_owner_release.lua"}
TTL = 0.45

Made = Callable[..., EventOwnership]


@pytest.fixture
async def gateways(redis_client: aioredis.Redis) -> AsyncIterator[Made]:
    made: list[EventOwnership] = []

    def make(gateway_id: str, asterisks: tuple[str, ...] = ("ast1",),
             client: RedisClient | None = None, **kw: object) -> EventOwnership:
        owners = EventOwnership(client or redis_client, "site1", asterisks,
                                gateway_id=gateway_id, ttl=TTL, **kw)  # type: ignore[arg-type]
        made.append(owners)
        return owners

    try:
        yield make
    finally:
        for owners in made:
            await owners.close()


async def wait_until(check: Callable[[], bool], timeout: float) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not check():
        if loop.time() - started > timeout:
            raise AssertionError(f"not true after {timeout}s")
        await asyncio.sleep(0.01)
    return loop.time() - started


async def test_exactly_one_gateway_owns_each_asterisk(gateways: Made) -> None:
    a = gateways("gw-a", ("ast1", "ast2"))
    b = gateways("gw-b", ("ast1", "ast2"))
    for _ in range(3):
        await a.step()
        await b.step()
    assert a.owned() == {"ast1", "ast2"} and b.owned() == frozenset()
    assert b.state("ast1").holder == "gw-a"
    assert [c.detail for c in readiness_checks(b)] == ["gateway gw-a, epoch 1"] * 2
    assert all(c.ok for c in readiness_checks(b))


async def test_a_dead_owner_is_replaced_within_about_a_ttl_with_a_higher_epoch(
    gateways: Made,
) -> None:
    gained: list[tuple[str, int]] = []
    registry = CollectorRegistry()
    a = gateways("gw-a")
    b = gateways("gw-b", registry=registry)
    b.on_gain(lambda name, epoch: gained.append((name, epoch)))
    a.start()
    await wait_until(lambda: a.is_owner("ast1"), 2.0)
    b.start()
    await asyncio.sleep(TTL)
    assert not b.is_owner("ast1") and gained == []
    assert a.epoch("ast1") == 1

    assert a._task is not None
    a._task.cancel()  # the owner dies: it neither renews nor gives up
    took = await wait_until(lambda: b.is_owner("ast1"), 3 * TTL)
    assert took < TTL * 1.6
    assert gained == [("ast1", 2)]
    # the dead one stops believing in it by itself, before anyone else could have it
    assert not a.is_owner("ast1")
    text = generate_latest(registry).decode()
    assert 'callgate_event_owner{asterisk="ast1"} 1.0' in text
    assert 'callgate_event_owner_epoch{asterisk="ast1"} 2.0' in text


async def test_a_clean_shutdown_hands_over_at_the_next_claim(gateways: Made) -> None:
    lost: list[tuple[str, int]] = []
    a = gateways("gw-a")
    b = gateways("gw-b")
    a.on_loss(lambda name, epoch: lost.append((name, epoch)))
    await a.step()
    await b.step()
    await a.close()
    assert lost == [("ast1", 1)]
    await b.step()  # no waiting for the ttl
    assert b.is_owner("ast1") and b.epoch("ast1") == 2


async def test_an_owner_cut_off_from_redis_stops_believing_it_owns(
    gateways: Made, redis_aof: RedisServer,
) -> None:
    client = aioredis.Redis.from_url(redis_aof.url, socket_timeout=0.2,
                                     socket_connect_timeout=0.2)
    try:
        lost: list[str] = []
        a = gateways("gw-a", client=client)
        a.on_loss(lambda name, _epoch: lost.append(name))
        await a.step()
        assert a.is_owner("ast1")
        redis_aof.stop(kill=True)
        await asyncio.sleep(TTL)
        await a.step()
        assert not a.is_owner("ast1") and lost == ["ast1"]
        # Redis-fenced work (prepaid debits) may still go out with the old epoch, so a
        # lone gateway keeps failing closed; Redis refuses it once another owner wrote
        assert a.fencing_epoch("ast1") == 1
        redis_aof.start()
        b = gateways("gw-b", client=client)
        await asyncio.sleep(TTL)
        await b.step()
        await a.step()
        assert b.is_owner("ast1") and a.fencing_epoch("ast1") is None
    finally:
        await client.aclose()


async def test_a_restarted_gateway_takes_its_dead_predecessors_lease_at_once(
    gateways: Made, tmp_path: Path,
) -> None:
    first, none = gateway_identity(tmp_path)
    assert none is None
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()  # a process id that no longer exists
    host = first.rsplit("-", 2)[0]
    (tmp_path / "event_owner.id").write_text(f"{host}-{dead.pid}-0123abcd\n")
    me, predecessor = gateway_identity(tmp_path)
    assert predecessor == f"{host}-{dead.pid}-0123abcd" and me != predecessor
    old = gateways(predecessor)
    await old.step()  # the predecessor held the lease when it died
    assert old.epoch("ast1") == 1
    new = gateways(me, predecessor=predecessor)
    await new.step()  # no waiting for the ttl, and a new epoch
    assert new.is_owner("ast1") and new.epoch("ast1") == 2
    other = gateways("gw-c", predecessor="gw-nobody")
    await other.step()  # a lease held by a live gateway is never taken
    assert not other.is_owner("ast1")
    _, alive = gateway_identity(tmp_path)  # `me` (this process) is still running
    assert alive is None


async def test_an_ineligible_gateway_claims_nothing_and_gives_up_after_a_ttl(
    gateways: Made,
) -> None:
    logged_in = {"ast1": False}
    a = gateways("gw-a", eligible=lambda name: logged_in[name])
    b = gateways("gw-b")
    await a.step()
    await b.step()
    assert not a.is_owner("ast1") and b.is_owner("ast1")
    await b.close()
    logged_in["ast1"] = True
    await a.step()
    assert a.is_owner("ast1")
    logged_in["ast1"] = False  # its AMI session dropped: a short reconnect keeps it
    await a.step()
    assert a.is_owner("ast1")
    await asyncio.sleep(TTL)
    await a.step()
    assert not a.is_owner("ast1")


async def test_ownership_on_the_cluster_uses_one_slot_per_script(
    make_client: MakeClient,
) -> None:
    ledger = ScriptLedger()
    clients = [make_client(), make_client()]
    for c in clients:
        ledger.watch(c)
    a = EventOwnership(clients[0], "site1", ("ast1", "ast2"), gateway_id="gw-a", ttl=TTL)
    b = EventOwnership(clients[1], "site1", ("ast1", "ast2"), gateway_id="gw-b", ttl=TTL)
    await a.step()
    await b.step()
    assert a.owned() == {"ast1", "ast2"} and not b.owned()
    await a.close()
    await b.step()
    assert b.owned() == {"ast1", "ast2"} and b.epoch("ast2") == 2
    await b.close()
    assert EVENT_OWNER_SCRIPTS <= ledger.exercised
    assert ledger.cross_slot() == {}

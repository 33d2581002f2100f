"""The load generator: a seeded mix of tenants and destinations into a callgate context,
counted by what the gateway (here a tiny FastAGI server) decided."""

from __future__ import annotations

from sim.dialplan import ContextConfig
from sim.farend import Dist, RandomFarEnd
from sim.loadgen import Destination, LoadGenerator, LoadProfile, LoadStats
from tests.sim.agi_server import TinyAgiServer
from tests.sim.conftest import SimFactory


def by_tenant(env: dict[str, str]) -> list[str]:
    if env.get("agi_arg_1") == "tenant=globex":
        return [
            "SET VARIABLE CALLGATE_RESULT DENY",
            "SET VARIABLE CALLGATE_REASON tenant_limit",
            "SET VARIABLE CALLGATE_CAUSE 34",
        ]
    return ["SET VARIABLE CALLGATE_RESULT ALLOW", "SET VARIABLE CALLGATE_REASON ok"]


async def _run(make_sim: SimFactory, seed: int) -> tuple[LoadStats, list[str]]:
    sim = await make_sim(speed=50.0, seed=seed)
    sim.set_far_end(
        RandomFarEnd(
            ring=Dist.fixed(0.5), talk=Dist.uniform(1, 3), answer_probability=1.0, busy_rate=0.0
        )
    )
    async with TinyAgiServer(by_tenant) as agi:
        sim.add_context(
            ContextConfig("callgate-out", agi=agi.url() + ",tenant=${TENANT},direction=out")
        )
        profile = LoadProfile(
            rate=5.0,
            total_calls=20,
            tenants=(("acme", 3.0), ("globex", 1.0)),
            destinations=(Destination("49151", 1.0, 6), Destination("4930", 1.0, 7)),
            seed=seed,
        )
        gen = LoadGenerator(sim, profile)
        stats = await gen.run_to_completion()
        await gen.stop()
        dialled = [env["agi_extension"] for env in agi.requests]
    return stats, dialled


async def test_counts_every_decision_by_reason(make_sim: SimFactory) -> None:
    stats, dialled = await _run(make_sim, seed=11)
    assert stats.attempted == stats.completed == 20
    assert stats.allowed + stats.denied == 20
    assert stats.denied == stats.by_tenant["globex"] == stats.denied_by_reason["tenant_limit"]
    assert stats.allowed == stats.by_tenant["acme"] == stats.allowed_by_reason["ok"]
    assert stats.outcomes["answered"] == stats.allowed
    assert stats.outcomes["denied"] == stats.denied
    assert all(n.startswith(("49151", "4930")) for n in dialled)


async def test_same_seed_same_run(make_sim: SimFactory) -> None:
    first, dialled_a = await _run(make_sim, seed=5)
    second, dialled_b = await _run(make_sim, seed=5)
    assert sorted(dialled_a) == sorted(dialled_b)
    assert first.by_tenant == second.by_tenant
    assert first.denied_by_reason == second.denied_by_reason

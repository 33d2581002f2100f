"""Fixtures for the simulator's own tests: a running AsteriskSim on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sim.simulator import AsteriskSim
from sim.world import WorldConfig

SPEED = 10.0  # simulated seconds per real second in these tests

SimFactory = Callable[..., Awaitable[AsteriskSim]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    started: list[AsteriskSim] = []

    async def factory(speed: float = SPEED, **world: object) -> AsteriskSim:
        config = WorldConfig(auth_fail_delay=0.1, seed=7)
        for key, value in world.items():
            setattr(config, key, value)
        sim = AsteriskSim(speed=speed, world_config=config)
        await sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.stop()

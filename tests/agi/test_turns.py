"""Turns keep a session's commands one at a time and in order, whoever gives up waiting."""

from __future__ import annotations

import asyncio

from gateway.agi.turns import Turns


async def _use(turns: Turns, name: int, hold: asyncio.Event, order: list[int]) -> None:
    if turns.busy:
        await turns.wait()
    else:
        turns.busy = True
    try:
        order.append(name)
        await hold.wait()
    finally:
        turns.release()


async def test_first_come_first_served_and_a_cancelled_waiter_loses_only_its_place() -> None:
    turns = Turns()
    order: list[int] = []
    turns.busy = True  # this test holds the turn, as a command in flight would
    holds = [asyncio.Event() for _ in range(4)]
    tasks = [asyncio.create_task(_use(turns, i, holds[i], order)) for i in range(1, 4)]
    await asyncio.sleep(0)  # 1, 2, 3 wait in that order

    tasks[0].cancel()  # 1 gives up, and before it has run again the turn is released
    turns.release()
    for hold in holds:
        hold.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert order == [2, 3]
    assert isinstance(results[0], asyncio.CancelledError)
    assert not turns.busy  # free again for the next command


async def test_cancelled_right_after_being_handed_the_turn_passes_it_on() -> None:
    turns = Turns()
    order: list[int] = []
    holds = [asyncio.Event() for _ in range(3)]
    tasks = [asyncio.create_task(_use(turns, i, holds[i], order)) for i in range(3)]
    await asyncio.sleep(0)

    holds[0].set()
    await asyncio.sleep(0)  # 0 releases: the turn is handed to 1, which has not run yet
    tasks[1].cancel()
    holds[2].set()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert order == [0, 2]
    assert isinstance(results[1], asyncio.CancelledError)
    assert not turns.busy

"""The simulated Asterisk's AstDB as the gateway uses it after a restart: the h extension's
Set(DB(...)) and AMI DBPut / DBGet / DBDel with the frames of main/db.c (Asterisk 22):
DBGet's answer is a one-item event list, and a missing key is an Error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sim.simulator import AsteriskSim
from sim.world import WorldConfig
from tests.sim.replay import AmiClient

LOGIN = b"Action: Login\r\nUsername: gateway\r\nSecret: gateway\r\n\r\n"


@pytest.fixture
async def ami() -> AsyncIterator[tuple[AsteriskSim, AmiClient]]:
    sim = AsteriskSim(speed=1.0, world_config=WorldConfig(auth_fail_delay=0.1))
    await sim.start()
    client = await AmiClient.connect(sim.ami_port)
    client.send(LOGIN)
    await client.wait_for(lambda f: f[0] == ("Event", "FullyBooted"))
    try:
        yield sim, client
    finally:
        await client.close()
        await sim.stop()


async def _answer(client: AmiClient, action: bytes, aid: str,
                  last: tuple[str, str] | None = None) -> list[list[tuple[str, str]]]:
    """The frames carrying ActionID `aid`, up to the one whose first header is `last`
    (default: the first)."""
    mark = len(client.frames)
    client.send(action)
    done = await client.wait_for(
        lambda f: dict(f).get("ActionID") == aid and (not last or f[0] == last))
    return [list(f) for f in client.frames[mark:client.frames.index(done) + 1]
            if dict(f).get("ActionID") == aid]


async def test_dbput_dbget_dbdel_frames(ami: tuple[AsteriskSim, AmiClient]) -> None:
    sim, client = ami
    put = await _answer(client, b"Action: DBPut\r\nActionID: p\r\nFamily: callgate_end\r\n"
                                b"Key: 0123abcd\r\nVal: 1732370000.123\r\n\r\n", "p")
    assert put == [[("Response", "Success"), ("ActionID", "p"),
                    ("Message", "Updated database successfully")]]
    assert sim.world.astdb.get("callgate_end", "0123abcd") == "1732370000.123"

    got = await _answer(client, b"Action: DBGet\r\nActionID: g\r\nFamily: callgate_end\r\n"
                                b"Key: 0123abcd\r\n\r\n", "g", ("Event", "DBGetComplete"))
    assert got == [
        [("Response", "Success"), ("ActionID", "g"), ("EventList", "start"),
         ("Message", "Result will follow")],
        [("Event", "DBGetResponse"), ("Family", "callgate_end"), ("Key", "0123abcd"),
         ("Val", "1732370000.123"), ("ActionID", "g")],
        [("Event", "DBGetComplete"), ("ActionID", "g"), ("EventList", "Complete"),
         ("ListItems", "1")],
    ]

    deleted = await _answer(client, b"Action: DBDel\r\nActionID: d\r\nFamily: callgate_end\r\n"
                                    b"Key: 0123abcd\r\n\r\n", "d")
    assert deleted == [[("Response", "Success"), ("ActionID", "d"),
                        ("Message", "Key deleted successfully")]]
    for action, aid in ((b"DBGet", "g2"), (b"DBDel", "d2")):
        again = await _answer(client, b"Action: " + action + b"\r\nActionID: " + aid.encode()
                              + b"\r\nFamily: callgate_end\r\nKey: 0123abcd\r\n\r\n", aid)
        assert again == [[("Response", "Error"), ("ActionID", aid),
                          ("Message", "Database entry not found")]]
    no_key = await _answer(client, b"Action: DBGet\r\nActionID: k\r\nFamily: f\r\n\r\n", "k")
    assert no_key == [[("Response", "Error"), ("ActionID", "k"),
                       ("Message", "No key specified.")]]

"""The simulator's AGI() under uvloop, as `callgate demo` and bench/ run it: uvloop hands
the socket to the protocol a loop turn later and its transports are not asyncio's
classes, which once made every run end before its first command."""

from __future__ import annotations

import asyncio

import uvloop

from sim.fastagi import FastAgiCall


def test_agi_call_runs_its_commands_under_uvloop() -> None:
    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\n\n")
        writer.write(b"SET VARIABLE CALLGATE_RESULT ALLOW\n")
        await reader.readline()
        writer.write(b'EXEC MSet "A=1,B=2"\n')
        await reader.readline()
        writer.close()

    async def run() -> dict[str, str]:
        srv = await asyncio.start_server(server, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            outcomes = await asyncio.gather(
                *(FastAgiCall("127.0.0.1", port, "t").run() for _ in range(20)))
        finally:
            srv.close()
        assert all(o.variables == outcomes[0].variables for o in outcomes)
        return outcomes[0].variables

    assert uvloop.run(run()) == {"CALLGATE_RESULT": "ALLOW", "A": "1", "B": "2",
                                 "AGISTATUS": "SUCCESS"}

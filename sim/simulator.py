"""AsteriskSim: one simulated Asterisk (AMI server + dialplan + phones + queues) to start
from a test, from `callgate demo`, from a benchmark or from `python -m sim`."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from sim.ami_server import AmiServer
from sim.clock import SimClock
from sim.dialplan import ContextConfig, Dialplan, DialplanConfig, GatewayCall
from sim.farend import FarEnd
from sim.phones import PhoneCall, Phones
from sim.queues import Queues
from sim.world import World, WorldConfig

if TYPE_CHECKING:
    from sim.ami_server import AmiSession


class AsteriskSim:
    """Usage::

    async with AsteriskSim(speed=20) as sim:   # AMI on sim.ami_port (127.0.0.1)
        sim.add_context(ContextConfig("callgate-out", agi="agi://127.0.0.1:4573/authorize,"
                                      "tenant=acme,direction=out"))
        sim.set_far_end(RandomFarEnd(...))
        call = sim.place_call("4915100001", context="callgate-out")
    """

    def __init__(
        self,
        *,
        speed: float = 1.0,
        host: str = "127.0.0.1",
        ami_port: int = 0,
        world_config: WorldConfig | None = None,
        dialplan_config: DialplanConfig | None = None,
        clock: SimClock | None = None,
    ) -> None:
        self.clock = clock or SimClock(speed)
        self.world = World(world_config, self.clock)
        self.dialplan = Dialplan(self.world, dialplan_config)
        self.phones = Phones(self.world, self.dialplan)
        self.queues = Queues(self.world, self.dialplan)
        self.ami = AmiServer(self, host, ami_port)
        self.ami_sessions: set[AmiSession] = set()

    @property
    def ami_port(self) -> int:
        return self.ami.port

    async def start(self) -> AsteriskSim:
        await self.ami.start()
        return self

    async def stop(self) -> None:
        await self.ami.stop()
        await self.world.close()

    async def __aenter__(self) -> AsteriskSim:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---- conveniences -------------------------------------------------------------------

    def add_context(self, ctx: ContextConfig) -> None:
        self.dialplan.config.add_context(ctx)

    def set_far_end(self, far_end: FarEnd) -> None:
        self.dialplan.config.far_end = far_end

    def place_call(
        self,
        number: str,
        *,
        context: str = "gw-out",
        caller_num: str = "5551234",
        caller_name: str = "",
        endpoint: str = "trunk",
        variables: dict[str, str] | None = None,
        hangup_after: float | None = None,
    ) -> GatewayCall:
        return self.dialplan.place_call(
            number,
            context=context,
            caller_num=caller_num,
            caller_name=caller_name,
            endpoint=endpoint,
            variables=variables,
            hangup_after=hangup_after,
        )

    def register_phone(
        self,
        endpoint: str,
        *,
        user_agent: str = "sipp",
        host: str = "127.0.0.1",
        port: int | None = None,
        expires: int = 600,
        password: str | None = None,
    ) -> bool:
        """See Phones.register_phone: False when the password was wrong."""
        return self.phones.register_phone(
            endpoint,
            user_agent=user_agent,
            host=host,
            port=port,
            expires=expires,
            password=password,
        )

    def unregister_phone(
        self, endpoint: str, *, host: str = "127.0.0.1", port: int | None = None
    ) -> bool:
        return self.phones.unregister_phone(endpoint, host=host, port=port)

    def phone_call(self, caller: str, number: str, *, talk: float = 4.0) -> PhoneCall:
        return self.phones.call(caller, number, talk=talk)

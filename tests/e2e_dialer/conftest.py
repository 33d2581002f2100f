"""The dialer wired as in the daemon, in-process, against the simulator over real AMI.

Real Redis, real limits, the real AmiClient and ChannelTable on the simulator's AMI port,
CallControl releasing leases on hang-up as in the daemon, and the CampaignService on the
simulator's clock (so a run at speed 40 is paced in simulated seconds).
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ami import AmiClient, AmiSettings, ChannelTable
from dialer.campaign import Campaign
from dialer.campaign_store import CampaignStore
from dialer.controls import SupervisorControls
from dialer.csv_import import ImportReport, LeadImporter
from dialer.keys import CampaignKeys
from dialer.lead_store import LeadStore
from dialer.leads import Lead
from gateway.call_control import CallControl
from gateway.campaigns import CampaignService, DialerSettings
from gateway.campaigns.placer import DeviceLookup
from gateway.metrics import Metrics
from gateway.mqtt_events import MqttPublisher
from gateway.wiring import AsteriskLink
from limits import EmergencyNumbers, LimitsService
from sim.dialplan import ContextConfig
from sim.originate import OriginateRequest
from sim.simulator import AsteriskSim
from sim.world import WorldConfig
from tests.e2e.conftest import redis_for_stack, stack  # noqa: F401  (the daemon stack)

SITE = "e2e"
TENANT = "acme"
QUEUE = "sales"
TRUNK = "sip-out"


@dataclass
class DialerRig:
    sim: AsteriskSim
    redis: aioredis.Redis
    limits: LimitsService
    client: AmiClient
    table: ChannelTable
    control: CallControl
    tmp: Path
    speed: float
    originated: list[OriginateRequest] = field(default_factory=list)
    service: CampaignService | None = None
    mqtt: MqttPublisher | None = None

    @property
    def links(self) -> dict[str, AsteriskLink]:
        return {"sim": AsteriskLink(self.client, self.table)}

    def start_service(self, *, mqtt: MqttPublisher | None = None,
                      devices: DeviceLookup | None = None) -> CampaignService:
        self.mqtt = mqtt
        # One pacing tick per simulated second; look for campaigns often (test start-up).
        settings = DialerSettings(tick_s=1.0 / self.speed, stats_interval_s=0.2, rescan_s=0.2)
        self.service = CampaignService(SITE, self.redis, self.limits, self.links, Metrics(),
                                       mqtt, settings=settings, clock=self.sim.clock,
                                       devices=devices)
        self.service.start()
        return self.service

    async def add_campaign(self, campaign: Campaign) -> None:
        await CampaignStore(self.redis).put(campaign)

    def controls(self) -> SupervisorControls:
        return SupervisorControls(self.redis, CampaignStore(self.redis), self.sim.clock)

    async def import_rows(self, campaign: Campaign,
                          rows: list[tuple[str, str]]) -> ImportReport:
        path = self.tmp / f"{campaign.campaign_id}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["phone", "timezone", "name"])
            for i, (phone, zone) in enumerate(rows):
                w.writerow([phone, zone, f"Lead {i}"])
        importer = LeadImporter(LeadStore(self.redis), self.sim.clock.now)
        return await importer.import_leads(campaign, path)

    async def leads(self, campaign: Campaign, phones: list[str]) -> dict[str, Lead]:
        store, keys = LeadStore(self.redis), CampaignKeys(campaign.tenant, campaign.campaign_id)
        out = {}
        for phone in phones:
            lead = await store.get(keys, phone)
            assert lead is not None, phone
            out[phone] = lead
        return out

    def sim_calls(self) -> int:
        """Calls up in the simulated Asterisk (channels grouped by Linkedid)."""
        return len({c.linkedid for c in self.sim.world.live_channels()})

    async def in_use(self, kind: str, name: str, tenant: str | None = None) -> int:
        return (await self.limits.settings.show(kind, name, tenant=tenant)).in_use

    async def wait_for(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check():
            if loop.time() > deadline:
                raise AssertionError(f"{what}: not within {timeout}s")
            await asyncio.sleep(0.02)


def zones_open_and_closed(now: float) -> tuple[str, str]:
    """Two fixed-offset zones: one where 06:00-18:00 is open for hours yet, one where it
    stays closed for hours (so a run of some simulated hours cannot cross an edge)."""
    utc = datetime.fromtimestamp(now, UTC)
    minutes = utc.hour * 60 + utc.minute
    open_zone = closed_zone = ""
    for offset in range(-12, 15):
        local = (minutes + offset * 60) % 1440
        name = "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"
        if 7 * 60 <= local < 11 * 60 and not open_zone:
            open_zone = name
        if 19 * 60 <= local < 24 * 60 and not closed_zone:
            closed_zone = name
    assert open_zone and closed_zone
    return open_zone, closed_zone


RigFactory = Callable[..., AbstractAsyncContextManager[DialerRig]]


@pytest.fixture
def dialer_rig(tmp_path: Path, redis_client: aioredis.Redis) -> RigFactory:
    """`async with dialer_rig(speed) as rig:` (AMI logged in, no service started yet)."""

    @asynccontextmanager
    async def make(speed: float, *, dial_timeout: int = 30,
                   seed: int = 11) -> AsyncIterator[DialerRig]:
        sim = AsteriskSim(speed=speed, world_config=WorldConfig(auth_fail_delay=0.1, seed=seed))
        await sim.start()
        # The dialer's context: no authorize hook (the call was authorized before the
        # Originate, whose CALLGATE_* variables it acts on).
        sim.add_context(ContextConfig("callgate-dialer", agi="", dial_timeout=dial_timeout))
        limits = LimitsService(redis_client, SITE, emergency=EmergencyNumbers(["112"]),
                               lease_ttl=30.0, reconcile_grace=2.0)
        client = AmiClient(AmiSettings(name="sim", host="127.0.0.1", port=sim.ami_port,
                                       username="gateway", secret="gateway",
                                       ping_interval=5.0, action_timeout=5.0))
        table = ChannelTable()
        table.attach(client)
        control = CallControl(limits, {"sim": AsteriskLink(client, table)}, Metrics())
        control.start()
        rig = DialerRig(sim, redis_client, limits, client, table, control, tmp_path, speed)
        original = sim.dialplan.originate

        def recording(req: OriginateRequest):  # type: ignore[no-untyped-def]
            rig.originated.append(req)
            return original(req)

        sim.dialplan.originate = recording  # type: ignore[method-assign]
        client.start()
        try:
            await client.wait_ready(10.0)
            yield rig
        finally:
            if rig.service is not None:
                await rig.service.close()
            if rig.mqtt is not None:
                await rig.mqtt.close()
            await rig.control.close()
            await client.close()
            await table.close()
            await sim.stop()

    return make

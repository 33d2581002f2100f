"""Builds the daemon's parts from the config and connects them; holds no business rule.

What is connected to what is readable here in one place: AGI routes to the domain
services, AMI channel events to lease release and reconciliation, decisions to MQTT.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from ami import AmiClient, AmiSettings, ChannelTable
from gateway.agi import AgiServer, Router
from gateway.api import ApiDeps, live_calls_from_tables, mount_api
from gateway.call_control import CallControl
from gateway.call_events import CallEvents
from gateway.campaigns import CampaignService
from gateway.config import Config, parse_listen
from gateway.devices import DeviceRegistry
from gateway.http_api import Check
from gateway.metrics import Metrics
from gateway.mqtt_events import MqttPublisher
from gateway.redis_connect import RedisClient
from gateway.wallboard import DecisionTally, WallboardDeps, mount_wallboard
from hw_profiles import ProfileSet, load_profiles
from limits import BackendUnavailable, EmergencyNumbers, LimitsService

log = structlog.get_logger(__name__)


@dataclass
class AsteriskLink:
    """One Asterisk: its AMI session and the live channel table fed by it."""

    client: AmiClient
    channels: ChannelTable


@dataclass
class Services:
    config: Config
    redis: RedisClient
    metrics: Metrics
    router: Router
    agi: AgiServer
    limits: LimitsService
    profiles: ProfileSet
    devices: DeviceRegistry
    asterisks: dict[str, AsteriskLink] = field(default_factory=dict)
    mqtt: MqttPublisher | None = None
    calls: CallControl | None = None
    decisions: DecisionTally = field(default_factory=DecisionTally)
    call_events: CallEvents | None = None
    campaigns: CampaignService | None = None

    @property
    def agi_port(self) -> int:
        return self.agi.bound_port

    async def start(self) -> None:
        if self.mqtt is not None:
            self.mqtt.start()
        try:
            await self.limits.load_scripts()
        except BackendUnavailable as exc:
            log.warning("limits_scripts_not_loaded", error=str(exc), retry="on first call")
        self.call_events = CallEvents([self.mqtt, self.decisions])
        self.calls = CallControl(self.limits, self.asterisks, self.metrics, self.call_events)
        for name, link in self.asterisks.items():
            link.channels.subscribe(self.call_events.listener(name))
        self.calls.register(self.router)
        self.calls.start()
        self.campaigns = CampaignService(self.config.site.name, self.redis, self.limits,
                                         self.asterisks, self.metrics, self.mqtt)
        self.campaigns.start()  # before the AMI logins: their QueueStatus sync needs it
        for link in self.asterisks.values():
            link.client.start()
        await self.agi.start()

    def mount_http(self, app: web.Application) -> None:
        tables = {name: link.channels for name, link in self.asterisks.items()}
        mount_api(app, ApiDeps(
            redis=self.redis, site=self.config.site.name, limits=self.limits,
            profiles=self.profiles, devices=self.devices,
            live_calls=live_calls_from_tables(tables),
        ))
        mount_wallboard(app, WallboardDeps(
            redis=self.redis, site=self.config.site.name, limits=self.limits,
            decisions=self.decisions, low_cards=None,
            campaigns=self.campaigns.site_figures if self.campaigns is not None else None,
        ))

    def readiness(self) -> Sequence[Check]:
        checks = []
        for name, link in self.asterisks.items():
            self.metrics.ami_connected.labels(asterisk=name).set(int(link.client.logged_in))
            detail = "" if link.client.logged_in else "AMI not logged in"
            checks.append(Check(f"asterisk:{name}", link.client.logged_in, detail))
        return checks

    def apply_live_config(self, config: Config) -> None:
        self.config = config
        self.agi.request_timeout = config.agi.request_timeout
        self.limits.set_backend_policy(config.limits.redis_down_policy)

    async def drain(self, timeout: float) -> int:
        """Stop dialling and taking new AGI connections, wait for the ones in flight;
        0 = all done."""
        self.limits.refuse_unknown_tenants = config.limits.unknown_tenant == "refuse"
        if self.campaigns is not None:
            await self.campaigns.close()
        self.agi.stop_accepting()
        if await self.agi.wait_idle(timeout):
            return 0
        return self.agi.active_connections

    async def close(self) -> None:
        await self.agi.close()
        if self.campaigns is not None:
            await self.campaigns.close()
        if self.calls is not None:
            await self.calls.close()
        for link in self.asterisks.values():
            await link.client.close()
            await link.channels.close()
        if self.mqtt is not None:
            await self.mqtt.close()


def build_services(config: Config, redis: RedisClient, metrics: Metrics) -> Services:
    router = Router()
    host, port = parse_listen(config.agi.listen)
    agi = AgiServer(
        host, port, router,
        max_connections=config.agi.max_connections,
        request_timeout=config.agi.request_timeout,
    )
    limits = LimitsService(
        redis, config.site.name,
        emergency=EmergencyNumbers(config.site.emergency_numbers),
        lease_ttl=config.limits.lease_ttl,
        backend_policy=config.limits.redis_down_policy,
        # A lease this young may not show on its channel yet (set over AGI a few ms
        # after the acquire): reconciliation leaves it alone.
        reconcile_grace=2.0,
    )
        refuse_unknown_tenants=config.limits.unknown_tenant == "refuse",
    extra = [Path(config.daemon.hw_profiles_dir)] if config.daemon.hw_profiles_dir else []
    profiles = load_profiles(extra)
    devices = DeviceRegistry(profiles)
    services = Services(config, redis, metrics, router, agi, limits, profiles, devices)
    for ast in config.asterisk:
        client = AmiClient(
            AmiSettings(
                name=ast.name, host=ast.host, port=ast.port, username=ast.username,
                secret=ast.secret, action_timeout=ast.action_timeout,
                ping_interval=ast.ping_interval,
            )
        )
        table = ChannelTable(logger=log.bind(asterisk=ast.name))
        table.attach(client)
        client.subscribe("*", devices.handle_event)
        client.on_resync(_contacts_resync(client, devices))
        services.asterisks[ast.name] = AsteriskLink(client, table)
    if config.mqtt is not None:
        services.mqtt = MqttPublisher(
            config.mqtt.url, config.site.name, metrics, config.mqtt.queue_size
        )
    return services


def _contacts_resync(client: AmiClient, devices: DeviceRegistry) -> Callable[[Any], None]:
    """After each AMI login, ask for the registered contacts (they carry the User-Agent
    that picks each phone's profile) and hand them to the device registry."""

    async def fetch() -> None:
        try:
            result = await client.action("PJSIPShowContacts")
        except Exception as exc:
            log.warning("devices_resync_failed", asterisk=client.settings.name, error=str(exc))
            return
        if result.ok:
            devices.resync(result.events)

    running: set[asyncio.Task[None]] = set()

    def on_resync(_items: Any) -> None:
        task = asyncio.get_running_loop().create_task(fetch(), name="devices-resync")
        running.add(task)
        task.add_done_callback(running.discard)

    return on_resync

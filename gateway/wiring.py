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
from gateway.api.resources.preview import PreviewDesk
from gateway.call_control import CallControl
from gateway.call_events import CallEvents
from gateway.campaigns import CampaignService
from gateway.config import Config, parse_listen
from gateway.devices import DeviceRegistry
from gateway.devices.contact_lookup import ContactLookup, resync_from
from gateway.devices.dialing import ClickToCall
from gateway.devices.enforcement import DeviceGate
from gateway.event_owner import EventOwnership, gateway_identity, readiness_checks
from gateway.http_api import Check
from gateway.metrics import Metrics
from gateway.mqtt_commands import MqttCommands
from gateway.mqtt_events import MqttPublisher
from gateway.prepaid_calls import PrepaidCalls
from gateway.prepaid_wiring import wire_prepaid
from gateway.redis_connect import RedisClient
from gateway.wallboard import DecisionTally, WallboardDeps, mount_wallboard
from hw_profiles import ProfileSet, load_profiles
from limits import BackendUnavailable, EmergencyNumbers, LimitsService
from prepaid.clock import Clock

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
    mqtt_commands: MqttCommands | None = None  # supervisors' callgate/<site>/cmd/...
    calls: CallControl | None = None
    decisions: DecisionTally = field(default_factory=DecisionTally)
    call_events: CallEvents | None = None
    campaigns: CampaignService | None = None
    contact_lookup: ContactLookup | None = None
    prepaid: PrepaidCalls | None = None  # card calls: .service .cards .pins .vouchers ...
    prepaid_clock: Clock | None = None  # tests: a faster clock for the debit ticker
    owners: EventOwnership | None = None  # which Asterisks' once-only duties are ours
    preview: PreviewDesk | None = None  # preview offers for the API and MQTT commands

    @property
    def agi_port(self) -> int:
        return self.agi.bound_port

    async def start(self) -> None:
        if self.mqtt is not None:
            self.mqtt.start()
        if self.mqtt_commands is not None:
            self.mqtt_commands.start()
        try:
            await self.limits.load_scripts()
        except BackendUnavailable as exc:
            log.warning("limits_scripts_not_loaded", error=str(exc), retry="on first call")
        self.call_events = CallEvents([self.mqtt, self.decisions])
        gateway_id, predecessor = gateway_identity(self.config.daemon.state_dir)
        self.owners = EventOwnership(self.redis, self.config.site.name, self.asterisks,
                                     gateway_id=gateway_id, predecessor=predecessor,
                                     registry=self.metrics.registry,
                                     eligible=lambda n: self.asterisks[n].client.logged_in)
        self.calls = CallControl(self.limits, self.asterisks, self.metrics, self.call_events,
                                 devices=DeviceGate(self.devices, self.limits.settings))
        for name, link in self.asterisks.items():
            link.channels.subscribe(self.call_events.listener(name))
        self.calls.register(self.router)
        self.calls.use_event_owner(self.owners)
        self.calls.start()
        self.prepaid = wire_prepaid(self.config, self.redis, self.asterisks, self.limits,
                                    self.calls, self.router, self.mqtt, self.prepaid_clock,
                                    owners=self.owners)
        await self.prepaid.start()
        self.campaigns = CampaignService(self.config.site.name, self.redis, self.limits,
                                         self.asterisks, self.metrics, self.mqtt,
                                         devices=self.devices)
        self.campaigns.event_owner = self.owners  # only an event owner places calls
        self.campaigns.start()  # before the AMI logins: their QueueStatus sync needs it
        self.preview = PreviewDesk(self.campaigns, self.mqtt)
        if self.mqtt_commands is not None:  # preview offer/accept/skip over MQTT
            self.mqtt_commands.preview = self.preview
        self.contact_lookup = ContactLookup(self.devices, self.asterisks)
        self.contact_lookup.start()
        for link in self.asterisks.values():
            link.client.on_resync(lambda _items: self.owners.poke() if self.owners else None)
            link.client.start()
        self.owners.start()
        await self.agi.start()

    def mount_http(self, app: web.Application) -> None:
        tables = {name: link.channels for name, link in self.asterisks.items()}
        mount_api(app, ApiDeps(
            redis=self.redis, site=self.config.site.name, limits=self.limits,
            profiles=self.profiles, devices=self.devices,
            live_calls=live_calls_from_tables(tables),
            click_to_call=ClickToCall(self.devices, self.asterisks),
            preview=self.preview,
            pin_secret=self.config.prepaid.pin_secret.encode() or None,
        ))
        mount_wallboard(app, WallboardDeps(
            redis=self.redis, site=self.config.site.name, limits=self.limits,
            decisions=self.decisions,
            low_cards=self.prepaid.low_cards if self.prepaid is not None else None,
            campaigns=self.campaigns.site_figures if self.campaigns is not None else None,
        ))

    def readiness(self) -> Sequence[Check]:
        checks = []
        for name, link in self.asterisks.items():
            self.metrics.ami_connected.labels(asterisk=name).set(int(link.client.logged_in))
            detail = "" if link.client.logged_in else "AMI not logged in"
            checks.append(Check(f"asterisk:{name}", link.client.logged_in, detail))
        if self.owners is not None:
            checks.extend(readiness_checks(self.owners))
        return checks

    def apply_live_config(self, config: Config) -> None:
        self.config = config
        self.agi.request_timeout = config.agi.request_timeout
        self.limits.set_backend_policy(config.limits.redis_down_policy)
        self.limits.refuse_unknown_tenants = config.limits.unknown_tenant == "refuse"

    async def drain(self, timeout: float) -> int:
        """Stop dialling and taking new AGI connections, wait for the ones in flight;
        0 = all done."""
        if self.campaigns is not None:
            await self.campaigns.close()
        self.agi.stop_accepting()
        if await self.agi.wait_idle(timeout):
            return 0
        return self.agi.active_connections

    async def close(self) -> None:
        await self.agi.close()
        if self.owners is not None:  # give ownership up first: another gateway takes over
            await self.owners.close()
        if self.prepaid is not None:
            await self.prepaid.close()
        if self.campaigns is not None:
            await self.campaigns.close()
        if self.calls is not None:
            await self.calls.close()
        if self.contact_lookup is not None:
            await self.contact_lookup.close()
        for link in self.asterisks.values():
            await link.client.close()
            await link.channels.close()
        if self.mqtt_commands is not None:
            await self.mqtt_commands.close()
        if self.mqtt is not None:
            await self.mqtt.close()
        await self.limits.aclose()


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
        refuse_unknown_tenants=config.limits.unknown_tenant == "refuse",
        # A lease this young may not show on its channel yet (set over AGI a few ms
        # after the acquire): reconciliation leaves it alone.
        reconcile_grace=2.0,
    )
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
        services.mqtt_commands = MqttCommands(config.mqtt.url, config.site.name, redis, limits)
        services.mqtt = MqttPublisher(
            config.mqtt.url, config.site.name, metrics, config.mqtt.queue_size
        )
    return services


def _contacts_resync(client: AmiClient, devices: DeviceRegistry) -> Callable[[Any], None]:
    """After each AMI login, ask for the registered contacts (they carry the User-Agent
    that picks each phone's profile) and hand them to the device registry."""

    async def fetch() -> None:
        try:
            await resync_from(client, devices)
        except Exception as exc:
            log.warning("devices_resync_failed", asterisk=client.settings.name, error=str(exc))

    running: set[asyncio.Task[None]] = set()

    def on_resync(_items: Any) -> None:
        task = asyncio.get_running_loop().create_task(fetch(), name="devices-resync")
        running.add(task)
        task.add_done_callback(running.discard)

    return on_resync

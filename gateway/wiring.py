"""Builds the daemon's parts from the config and connects them; holds no business rule.

What is connected to what is readable here in one place: AGI routes to the domain
services, AMI channel events to lease release and reconciliation, decisions to MQTT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis
import structlog
from aiohttp import web

from ami import AmiClient, AmiSettings, ChannelTable
from gateway.agi import AgiServer, Router
from gateway.config import Config, parse_listen
from gateway.http_api import Check
from gateway.metrics import Metrics
from gateway.mqtt_events import MqttPublisher

log = structlog.get_logger(__name__)


@dataclass
class AsteriskLink:
    """One Asterisk: its AMI session and the live channel table fed by it."""

    client: AmiClient
    channels: ChannelTable


@dataclass
class Services:
    config: Config
    redis: aioredis.Redis
    metrics: Metrics
    router: Router
    agi: AgiServer
    asterisks: dict[str, AsteriskLink] = field(default_factory=dict)
    mqtt: MqttPublisher | None = None

    @property
    def agi_port(self) -> int:
        return self.agi.bound_port

    async def start(self) -> None:
        if self.mqtt is not None:
            self.mqtt.start()
        for link in self.asterisks.values():
            link.client.start()
        await self.agi.start()

    def mount_http(self, app: web.Application) -> None:
        """The /v1/ API is added here as the domain services grow their HTTP side."""

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

    async def drain(self, timeout: float) -> int:
        """Stop taking new AGI connections and wait for the ones in flight; 0 = all done."""
        self.agi.stop_accepting()
        if await self.agi.wait_idle(timeout):
            return 0
        return self.agi.active_connections

    async def close(self) -> None:
        await self.agi.close()
        for link in self.asterisks.values():
            await link.client.close()
            await link.channels.close()
        if self.mqtt is not None:
            await self.mqtt.close()


def build_services(config: Config, redis: aioredis.Redis, metrics: Metrics) -> Services:
    router = Router()
    host, port = parse_listen(config.agi.listen)
    agi = AgiServer(
        host, port, router,
        max_connections=config.agi.max_connections,
        request_timeout=config.agi.request_timeout,
    )
    services = Services(config, redis, metrics, router, agi)
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
        services.asterisks[ast.name] = AsteriskLink(client, table)
    if config.mqtt is not None:
        services.mqtt = MqttPublisher(
            config.mqtt.url, config.site.name, metrics, config.mqtt.queue_size
        )
    return services

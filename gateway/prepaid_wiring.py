"""Connects prepaid to the daemon: one `PrepaidCalls` (ticker, AMI cut-off and warnings,
card= decisions), the `prepaid` IVR route, events to MQTT. Called from gateway.wiring."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.agi import Router
from gateway.call_control import CallControl
from gateway.config import Config
from gateway.event_owner import EventOwnership
from gateway.prepaid_calls import (
    AsteriskLinkLike,
    LeaseReleaser,
    MqttPrepaidEvents,
    PrepaidCalls,
    SyncPublisher,
    debit_url,
)
from gateway.prepaid_ivr import PrepaidIvr
from gateway.prepaid_owner import follow_ownership
from limits import EmergencyNumbers
from prepaid.clock import Clock
from prepaid.scripts import RedisClient


def wire_prepaid(
    config: Config,
    redis: RedisClient,
    asterisks: Mapping[str, AsteriskLinkLike],
    limits: LeaseReleaser,
    calls: CallControl,
    router: Router,
    mqtt: SyncPublisher | None,
    clock: Clock | None = None,
    owners: EventOwnership | None = None,
) -> PrepaidCalls:
    """Build and connect; the caller awaits `.start()` (resume, ticker, AMI listeners).
    With `owners`, a call is debited by the event owner of its Asterisk only
    (gateway.prepaid_owner)."""
    emergency = EmergencyNumbers(config.site.emergency_numbers)
    prepaid = PrepaidCalls(
        redis, config.site.name, asterisks, limits, MqttPrepaidEvents(mqtt),
        redis_url=debit_url(config), is_emergency=emergency.matches,
        settings=config.prepaid, clock=clock,
    )
    calls.cards = prepaid
    if owners is not None:
        follow_ownership(prepaid.scheduler, owners, after_adopt=prepaid.sweep_gone)
    PrepaidIvr(calls, prepaid, config.prepaid.pin_tries).register(router)
    return prepaid

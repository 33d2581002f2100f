"""Prometheus metrics of one daemon, on a registry of its own (no process-global state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.agi_requests = Counter(
            "callgate_agi_requests", "FastAGI requests handled, by route", ["route"], registry=r
        )
        self.decisions = Counter(
            "callgate_decisions", "Call decisions, by result and reason",
            ["result", "reason"], registry=r,
        )
        self.agi_in_flight = Gauge(
            "callgate_agi_in_flight", "FastAGI connections being served", registry=r
        )
        self.ami_connected = Gauge(
            "callgate_ami_logged_in", "1 when the AMI session is logged in", ["asterisk"],
            registry=r,
        )
        self.mqtt_dropped = Counter(
            "callgate_mqtt_dropped", "MQTT events dropped because the queue was full",
            registry=r,
        )
        self.redis_up = Gauge("callgate_redis_up", "1 when Redis answered the last probe",
                              registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

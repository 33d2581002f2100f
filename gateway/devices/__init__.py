"""Desk phones registered through the PBX: registry fed by AMI events, click-to-call
Originate fields, and the `callgate hw` views."""

from gateway.devices.click_to_call import auto_answer_headers, click_to_call_originate_fields
from gateway.devices.events import AmiEvent
from gateway.devices.registry import (
    ContactSnapshot,
    DeviceChange,
    DeviceChangeSubscription,
    DeviceRegistry,
    DeviceSnapshot,
)

__all__ = [
    "AmiEvent",
    "ContactSnapshot",
    "DeviceChange",
    "DeviceChangeSubscription",
    "DeviceRegistry",
    "DeviceSnapshot",
    "auto_answer_headers",
    "click_to_call_originate_fields",
]

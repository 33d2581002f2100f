"""The one thing the device registry needs from an AMI message: keyed, case-insensitive get.

ami.frames.Message satisfies this, and so does a plain dict in tests; keeping it a Protocol
means the registry does not import the AMI client.
"""

from __future__ import annotations

from typing import Protocol


class AmiEvent(Protocol):
    def get(self, key: str, default: str | None = None, /) -> str | None: ...


def field(event: AmiEvent, *keys: str) -> str | None:
    """First non-empty value among `keys`: Asterisk spells the same field `URI` in
    ContactStatus and `Uri` in ContactList, and a plain dict is case-sensitive."""
    for key in keys:
        value = event.get(key)
        if value is not None and value.strip() != "":
            return value.strip()
    return None


def event_name(event: AmiEvent) -> str:
    return field(event, "Event", "event") or ""

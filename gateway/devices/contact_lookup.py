"""Asks Asterisk for the contacts of phones that register while the gateway is connected.

ContactStatus carries no User-Agent (recording h1), so a phone registering after the AMI
login would stay on the `default` profile, and its call appearances with it, until the
next login. On each `registered` change whose User-Agent is unknown, this asks every
logged-in Asterisk for PJSIPShowContacts and feeds the `ContactList` items back to the
registry, which then matches the phone's profile. Changes that arrive together are
answered by one request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, Protocol

import structlog

from ami.client import AmiClient
from gateway.devices.registry import DeviceRegistry


class AmiLink(Protocol):
    client: AmiClient


class ContactLookup:
    def __init__(self, registry: DeviceRegistry, asterisks: Mapping[str, AmiLink],
                 *, log: Any = None) -> None:
        self._registry = registry
        self._asterisks = asterisks
        self._log = log if log is not None else structlog.get_logger(__name__)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._asterisks:
            self._task = asyncio.create_task(self._run(), name="device-contact-lookup")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        sub = self._registry.subscribe()
        try:
            async for change in sub:
                if change.kind != "registered" or change.device.user_agent:
                    continue
                while sub.get_nowait() is not None:  # one request answers them all
                    pass
                await self.lookup()
        finally:
            sub.close()

    async def lookup(self) -> None:
        missing = self._registry.endpoints_missing_user_agent()
        if not missing:
            return
        for name, link in self._asterisks.items():
            if not link.client.logged_in:
                continue
            try:
                result = await link.client.action("PJSIPShowContacts")
            except Exception as exc:
                self._log.warning("device_contacts_lookup_failed", asterisk=name,
                                  error=str(exc))
                continue
            for item in result.events:
                if item.name == "ContactList":
                    self._registry.handle_event(item)
        self._log.info("device_contacts_looked_up", endpoints=missing[:20],
                       still_unknown=self._registry.endpoints_missing_user_agent()[:20])




async def resync_from(client: AmiClient, registry: DeviceRegistry) -> bool:
    """Replace the registry's state with Asterisk's contacts and endpoints (after a login,
    or in a CLI command that has no event stream). False when Asterisk gave no listing."""
    contacts = await client.action("PJSIPShowContacts")
    # Endpoints too, so a call to a phone never registered is known as offline.
    endpoints = await client.action("PJSIPShowEndpoints")
    no_contacts = not contacts.ok and "no contacts" in contacts.message.lower()
    if not (contacts.ok or (endpoints.ok and no_contacts)):
        return False
    registry.resync([*contacts.events, *(endpoints.events if endpoints.ok else ())])
    return True


__all__ = ["ContactLookup", "resync_from"]

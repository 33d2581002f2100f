"""What the API needs from the daemon, passed in by the wiring (no globals).

Optional services may be None (not configured, or not built yet); the routes that need
one answer 503 with the code `<field>_unavailable` (e.g. `devices_unavailable`). A later
module (prepaid, campaigns) adds its service here as one more optional field and names
it in its routes' `needs`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.api.live_calls import LiveCallsProvider
from gateway.api.tokens import RedisClient, TokenStore
from gateway.devices import DeviceRegistry
from gateway.devices.dialing import ClickToCall
from hw_profiles import ProfileSet
from limits import LimitsService

if TYPE_CHECKING:  # the resource module imports the routes, which import this module
    from gateway.api.resources.preview import PreviewDesk


@dataclass(frozen=True)
class ApiDeps:
    redis: RedisClient  # tokens and the reseller map live here
    site: str
    limits: LimitsService | None = None
    profiles: ProfileSet | None = None
    devices: DeviceRegistry | None = None
    click_to_call: ClickToCall | None = None  # AMI Originate to a desk phone
    live_calls: LiveCallsProvider | None = None
    preview: PreviewDesk | None = None  # the dialer's preview offers (CampaignService)
    # [prepaid] pin_secret: card batches and vouchers store PINs/codes as its keyed hash.
    pin_secret: bytes | None = None
    clock: Callable[[], float] = time.time
    log: Any = None  # a structlog logger; default: this package's
    version: str = "0.1.0"  # shown in the OpenAPI document's info

    def tokens(self) -> TokenStore:
        return TokenStore(self.redis, self.site, clock=self.clock, log=self.log)

    def missing(self, needs: tuple[str, ...]) -> str | None:
        """The first service in `needs` that is not configured, if any."""
        for name in needs:
            if getattr(self, name) is None:
                return name
        return None

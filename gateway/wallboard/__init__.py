"""The live wallboard served by the daemon at /wallboard: calls up per tenant and per
trunk against their limits, allowed/denied decisions per minute, campaigns and prepaid
cards near zero, pushed once per second over Server-Sent Events to a page whose every
asset ships in this package. A token shows what it may see (DESIGN invariant 4)."""

from gateway.wallboard.deps import (
    CampaignFigures,
    CampaignsProvider,
    CardFigures,
    LowCardsProvider,
    WallboardDeps,
)
from gateway.wallboard.routes import mount_wallboard
from gateway.wallboard.tally import DecisionTally, MinuteCounts

__all__ = [
    "CampaignFigures",
    "CampaignsProvider",
    "CardFigures",
    "DecisionTally",
    "LowCardsProvider",
    "MinuteCounts",
    "WallboardDeps",
    "mount_wallboard",
]

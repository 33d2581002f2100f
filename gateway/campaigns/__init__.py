"""The outbound dialer inside the daemon: campaign runners wired to limits/ and AMI."""

from gateway.campaigns.placer import AmiApology, AmiCallPlacer
from gateway.campaigns.service import CampaignHandle, CampaignService, TickRecord
from gateway.campaigns.settings import DialerSettings

__all__ = [
    "AmiApology",
    "AmiCallPlacer",
    "CampaignHandle",
    "CampaignService",
    "DialerSettings",
    "TickRecord",
]

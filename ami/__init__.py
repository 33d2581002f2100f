"""AMI protocol client and live channel table (no tenants, no cards: see DESIGN.md)."""

from ami.channels import CallInfo, CallListener, ChannelInfo, ChannelTable, ResyncSummary
from ami.client import ActionResult, AmiClient, AmiSettings
from ami.errors import (
    AmiActionError,
    AmiAuthError,
    AmiDisconnected,
    AmiError,
    AmiNotConnected,
    AmiTimeout,
)
from ami.frames import FrameParser, Message, encode_action

__all__ = [
    "ActionResult",
    "AmiActionError",
    "AmiAuthError",
    "AmiClient",
    "AmiDisconnected",
    "AmiError",
    "AmiNotConnected",
    "AmiSettings",
    "AmiTimeout",
    "CallInfo",
    "CallListener",
    "ChannelInfo",
    "ChannelTable",
    "FrameParser",
    "Message",
    "ResyncSummary",
    "encode_action",
]

"""Channel and bridge state, and the header blocks Asterisk prints for them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

STATE_DESC = {
    0: "Down",
    1: "Rsrvd",
    2: "OffHook",
    3: "Dialing",
    4: "Ring",
    5: "Ringing",
    6: "Up",
    7: "Busy",
    8: "Dialing Offhook",
    9: "Pre-ring",
}
DOWN, RING, RINGING, UP, BUSY = 0, 4, 5, 6, 7

# Asterisk's causes.h texts (Hangup Cause-txt).
CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    2: "No route to specified transmit network",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    22: "Number changed",
    27: "Destination out of order",
    28: "Invalid number format",
    29: "Facility rejected",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    44: "Requested channel not available",
    47: "Resource unavailable, unspecified",
    50: "Facility not subscribed",
    52: "Outgoing call barred",
    54: "Incoming call barred",
    58: "Bearer capability not available",
    88: "Incompatible destination",
    102: "Recover on timer expiry",
    111: "Protocol error, unspecified",
    127: "Interworking, unspecified",
}

UNKNOWN = "<unknown>"


def cause_text(cause: int) -> str:
    return CAUSE_TEXT.get(cause, "Unknown")


@dataclass(eq=False)
class Channel:
    """One simulated channel: what AMI events and list actions report about it."""

    name: str
    uniqueid: str
    linkedid: str
    tech: str
    context: str
    exten: str
    created_at: float
    priority: int = 1
    state: int = DOWN
    cid_num: str = UNKNOWN
    cid_name: str = UNKNOWN
    conn_num: str = UNKNOWN
    conn_name: str = UNKNOWN
    language: str = "en"
    accountcode: str = ""
    app: str = ""
    appdata: str = ""
    dnid: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    bridge_id: str = ""
    answered_at: float | None = None
    hungup: bool = False
    hangup_cause: int = 0
    # Set when something outside the channel's own dialplan wants it gone (AMI Hangup,
    # AbsoluteTimeout, the Local partner hanging up). The running dialplan reacts to it.
    hangup_requested: asyncio.Event = field(default_factory=asyncio.Event)
    requested_cause: int | None = None
    timeout_handle: asyncio.TimerHandle | None = None
    timeout_at: float | None = None
    cdr_frozen: bool = False  # the CDR stopped following the dialplan (after a Dial)
    cdr_last_app: str = ""
    cdr_last_data: str = ""
    cdr_dest_channel: str = ""
    cdr_source: str | None = None
    cdr_dest: str | None = None
    cdr_context: str | None = None
    partner: Channel | None = None  # the other half of a Local pair
    sip_call_id: str = ""  # a PJSIP leg with media: its bridge peer's BRIDGEPVTCALLID
    device: str = ""

    @property
    def state_desc(self) -> str:
        return STATE_DESC.get(self.state, "Unknown")

    def fields(self, prefix: str = "") -> list[tuple[str, str]]:
        """The standard channel snapshot block (Channel ... Linkedid), optionally prefixed."""
        return [
            (f"{prefix}Channel", self.name),
            (f"{prefix}ChannelState", str(self.state)),
            (f"{prefix}ChannelStateDesc", self.state_desc),
            (f"{prefix}CallerIDNum", self.cid_num),
            (f"{prefix}CallerIDName", self.cid_name),
            (f"{prefix}ConnectedLineNum", self.conn_num),
            (f"{prefix}ConnectedLineName", self.conn_name),
            (f"{prefix}Language", self.language),
            (f"{prefix}AccountCode", self.accountcode),
            (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.uniqueid),
            (f"{prefix}Linkedid", self.linkedid),
        ]

    def request_hangup(self, cause: int | None) -> None:
        if self.requested_cause is None:
            self.requested_cause = cause
        self.hangup_requested.set()


@dataclass(eq=False)
class Bridge:
    uniqueid: str
    channels: list[Channel] = field(default_factory=list)
    bridge_type: str = "basic"
    technology: str = "simple_bridge"

    def fields(self) -> list[tuple[str, str]]:
        return [
            ("BridgeUniqueid", self.uniqueid),
            ("BridgeType", self.bridge_type),
            ("BridgeTechnology", self.technology),
            ("BridgeCreator", UNKNOWN),
            ("BridgeName", UNKNOWN),
            ("BridgeNumChannels", str(len(self.channels))),
            ("BridgeVideoSourceMode", "none"),
        ]

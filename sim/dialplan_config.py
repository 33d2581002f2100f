"""How the simulated dialplan is set up: which contexts ask the gateway, and how."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sim.farend import FarEnd, PatternFarEnd

DIAL_VARS = (
    "DIALSTATUS",
    "DIALEDPEERNUMBER",
    "DIALEDPEERNAME",
    "ANSWEREDTIME",
    "ANSWEREDTIME_MS",
    "DIALEDTIME",
    "DIALEDTIME_MS",
    "RINGTIME",
    "RINGTIME_MS",
    "PROGRESSTIME",
    "PROGRESSTIME_MS",
)
MONITOR_DIR = "/opt/asterisk/var/spool/asterisk/monitor"
RECORDING_AGI = "agi://127.0.0.1:4573/authorize?call=${GW_CALL_ID},${EXTEN},${CALLERID(num)}"
Style = Literal["recording", "callgate"]


@dataclass(frozen=True)
class ContextConfig:
    """A context whose calls ask the gateway over FastAGI.

    `agi` is the AGI() application data, `${...}` expanded per call: the URL, then the
    arguments, comma separated (`agi://127.0.0.1:4573/authorize,tenant=acme,direction=out`).
    style "recording" is gw-out of the recordings (GW_AUTH / GW_DIAL_TIMEOUT / GW_DIAL_OPTS /
    GW_RECORD); style "callgate" applies CALLGATE_RESULT / CALLGATE_CAUSE / CALLGATE_MAXSEC.
    `release_agi`, when set, is run (no AMI events) once the channel has hung up, like the
    `h` extension calling the `release` route. An empty `agi` asks nobody: the callgate
    style then acts on the CALLGATE_* variables the channel already carries (the dialer
    authorizes before its Originate and passes them as Originate variables).
    """

    name: str
    style: Style = "callgate"
    agi: str = "agi://127.0.0.1:4573/authorize"
    dial_timeout: int = 30
    callee_context: str = "sim-callee"
    release_agi: str | None = None
    # Set() data the `h` extension runs first (before `release_agi`), e.g.
    # "DB(callgate_end/${CALLGATE_LEASE})=${STRFTIME(,,%s.%3q)}": DB() writes the AstDB.
    h_sets: tuple[str, ...] = ()
    # Set() data of a Dial U() subroutine (context `callgate-answered`, ARG1 = the call's
    # CALLGATE_LEASE) that runs on the callee's channel as it answers, before the bridge,
    # e.g. "DB(callgate_answer/${ARG1})=${STRFTIME(,,%s.%3q)}": when the callee answered.
    answer_sets: tuple[str, ...] = ()
    # Seconds added to CALLGATE_MAXSEC in Dial's L(): a prepaid dialplan leaves the cut-off
    # to the gateway (it sees the shared balance) and keeps L() only as a backstop.
    maxsec_margin: int = 0
    # The backstop of examples/asterisk/extensions.conf instead: when set (and MAXSEC > 0),
    # `ExecIf(1?Set(TIMEOUT(absolute)=MAXSEC+this))` before a Dial without L(). It counts
    # from that Set, ringing included, and ends the call as AMI AbsoluteTimeout does (d2).
    timeout_margin: int | None = None


@dataclass
class DialplanConfig:
    contexts: dict[str, ContextConfig] = field(
        default_factory=lambda: {"gw-out": ContextConfig("gw-out", "recording", RECORDING_AGI)}
    )
    far_end: FarEnd = field(default_factory=PatternFarEnd)
    prompt_context: str = "gw-prompt-player"
    # How long (sim seconds) the callee's Answer() takes before its next priority runs.
    answer_settle: float = 0.02

    def add_context(self, ctx: ContextConfig) -> None:
        self.contexts[ctx.name] = ctx

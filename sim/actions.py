"""AMI actions: each answers with the exact headers, order and messages of Asterisk 22."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from sim.ami_codec import Message
from sim.channels import Channel
from sim.cli_text import AMI_VERSION, ASTERISK_VERSION, CLI_OUTPUT, LIST_COMMANDS
from sim.functions import evaluate
from sim.originate import OriginateRequest, parse_originate

if TYPE_CHECKING:
    from sim.ami_server import AmiSession

log = structlog.get_logger(__name__)


@dataclass
class ActionCall:
    session: AmiSession
    msg: Message

    @property
    def action_id(self) -> str | None:
        return self.msg.get("ActionID")

    def head(self, response: str) -> list[tuple[str, str]]:
        out = [("Response", response)]
        if self.action_id is not None:
            out.append(("ActionID", self.action_id))
        return out

    def reply(self, response: str, *fields: tuple[str, str]) -> None:
        self.session.send([*self.head(response), *fields])

    def success(self, message: str) -> None:
        self.reply("Success", ("Message", message))

    def error(self, message: str) -> None:
        self.reply("Error", ("Message", message))

    def event(self, name: str, *fields: tuple[str, str]) -> None:
        """A list item: session-only, ActionID right after the Event line."""
        aid = [("ActionID", self.action_id)] if self.action_id is not None else []
        self.session.send([("Event", name), *aid, *fields])

    def list_start(self, message: str) -> None:
        self.reply("Success", ("EventList", "start"), ("Message", message))

    def list_complete(self, name: str, count: int, *extra: tuple[str, str]) -> None:
        self.event(name, ("EventList", "Complete"), ("ListItems", str(count)), *extra)

    def send_list(self, message: str, item: str, items: Sequence[Sequence[tuple[str, str]]],
                  complete: str) -> None:
        """A whole list answer whose items are all `item` events."""
        self.list_start(message)
        for fields in items:
            self.event(item, *fields)
        self.list_complete(complete, len(items))


Handler = Callable[[ActionCall], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def action(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[name.lower()] = fn
        return fn

    return register


NO_AUTH_ACTIONS = {"login", "logoff", "challenge"}


async def dispatch(session: AmiSession, msg: Message) -> None:
    call = ActionCall(session, msg)
    name = msg.get("Action")
    if name is None or name.strip() == "":
        call.error("Missing action in request")
        return
    name = name.strip()
    if not session.authenticated and name.lower() not in NO_AUTH_ACTIONS:
        call.error("Permission denied")
        return
    handler = HANDLERS.get(name.lower())
    if handler is None:
        call.error(
            f"Invalid/unknown command: {name}. Use Action: ListCommands to show available commands."
        )
        _security_event(session, "RequestBadFormat", "Error", [("RequestType", f"Action: {name}")])
        return
    try:
        await handler(call)
    except Exception as exc:  # a bad action must never take the simulator down
        log.exception("sim_action_failed", action=name)
        call.error(f"Internal error: {exc}")


def _tv(t: float) -> str:
    ms = int((t % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}+0000"


def _security_event(
    session: AmiSession, event: str, severity: str, extra: list[tuple[str, str]]
) -> None:
    world = session.sim.world
    fields = [
        ("EventTV", _tv(world.clock.now())),
        ("Severity", severity),
        ("Service", "AMI"),
        ("EventVersion", "1"),
        ("SessionID", session.session_id),
        ("LocalAddress", session.local),
        ("RemoteAddress", session.remote),
        *extra,
        ("SessionTV", _tv(session.login_time or world.clock.now())),
    ]
    if session.username:
        fields.append(("AccountID", session.username))
    world.emit(event, fields)


# ---- session ------------------------------------------------------------------------


@action("Login")
async def login(call: ActionCall) -> None:
    session = call.session
    sim = session.sim
    if session.authenticated:
        call.success("Already authenticated")
        return
    user = call.msg.get("Username", "") or ""
    secret = call.msg.get("Secret", "") or ""
    cfg = sim.world.config
    if user != cfg.ami_user or secret != cfg.ami_secret:
        await asyncio.sleep(cfg.auth_fail_delay)
        call.error("Authentication failed")
        await session.close()
        return
    session.authenticated = True
    session.username = user
    session.login_time = sim.world.clock.now()
    events = (call.msg.get("Events") or "on").strip().lower()
    session.event_classes = _event_classes(events)
    call.success("Authentication accepted")
    now = sim.world.clock.now()
    session.send(
        [
            ("Event", "FullyBooted"),
            ("Privilege", "system,all"),
            ("Uptime", str(int(now - sim.world.started_at))),
            ("LastReload", str(int(now - sim.world.reloaded_at))),
            ("Status", "Fully Booted"),
        ]
    )
    session.start_events()
    world = sim.world
    world.emit(
        "SuccessfulAuth",
        [
            ("EventTV", _tv(now)),
            ("Severity", "Informational"),
            ("Service", "AMI"),
            ("EventVersion", "1"),
            ("AccountID", user),
            ("SessionID", session.session_id),
            ("LocalAddress", session.local),
            ("RemoteAddress", session.remote),
            ("UsingPassword", "0"),
            ("SessionTV", _tv(now)),
        ],
    )


def _event_classes(mask: str) -> frozenset[str]:
    from sim.ami_server import ALL_CLASSES

    if mask in ("on", "yes", "true", "all", "1"):
        return ALL_CLASSES
    if mask in ("off", "no", "false", "0", "none", ""):
        return frozenset()
    return frozenset(p.strip() for p in mask.split(",")) & ALL_CLASSES


@action("Logoff")
async def logoff(call: ActionCall) -> None:
    call.reply("Goodbye", ("Message", "Thanks for all the fish."))
    await call.session.close()


@action("Challenge")
async def challenge(call: ActionCall) -> None:
    if (call.msg.get("AuthType") or "").lower() != "md5":
        call.error("Must specify AuthType")
        return
    call.reply("Success", ("Challenge", str(call.session.sim.world.rng.randrange(10**8, 10**9))))


@action("Ping")
async def ping(call: ActionCall) -> None:
    call.reply("Success", ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))


@action("Events")
async def events(call: ActionCall) -> None:
    mask = (call.msg.get("EventMask") or "").strip().lower()
    call.session.event_classes = _event_classes(mask)
    call.reply("Success", ("Events", "On" if call.session.event_classes else "Off"))


@action("ListCommands")
async def list_commands(call: ActionCall) -> None:
    call.reply("Success", *LIST_COMMANDS)


@action("CoreSettings")
async def core_settings(call: ActionCall) -> None:
    call.reply(
        "Success",
        ("AMIversion", AMI_VERSION),
        ("AsteriskVersion", ASTERISK_VERSION),
        ("SystemName", call.session.sim.world.config.system_name),
        ("CoreMaxCalls", "0"),
        ("CoreMaxLoadAvg", "0.000000"),
        ("CoreRunUser", ""),
        ("CoreRunGroup", ""),
        ("CoreMaxFilehandles", "0"),
        ("CoreRealTimeEnabled", "No"),
        ("CoreCDRenabled", "Yes"),
        ("CoreHTTPenabled", "No"),
        ("SoundsSearchCustomDir", "No"),
    )


@action("CoreStatus")
async def core_status(call: ActionCall) -> None:
    world = call.session.sim.world
    start = time.gmtime(world.started_at)
    reload = time.gmtime(world.reloaded_at)
    calls = len({c.linkedid for c in world.live_channels()})
    call.reply(
        "Success",
        ("CoreStartupDate", time.strftime("%Y-%m-%d", start)),
        ("CoreStartupTime", time.strftime("%H:%M:%S", start)),
        ("CoreReloadDate", time.strftime("%Y-%m-%d", reload)),
        ("CoreReloadTime", time.strftime("%H:%M:%S", reload)),
        ("CoreCurrentCalls", str(calls)),
        ("CoreProcessedCalls", str(world.processed_calls)),
    )


@action("Command")
async def command(call: ActionCall) -> None:
    cmd = " ".join((call.msg.get("Command") or "").split())
    if not cmd:
        call.error("No command provided")
        return
    lines = CLI_OUTPUT.get(cmd)
    if lines is None and cmd in ("core show channels", "core show calls"):
        lines = _show_channels(call, cmd)
    if lines is None:
        call.reply(
            "Error",
            ("Message", "Command output follows"),
            ("Output", f"No such command '{cmd}' (type 'core show help {cmd}' for other commands)"),
        )
        return
    call.reply("Success", ("Message", "Command output follows"), *(("Output", ln) for ln in lines))


def _show_channels(call: ActionCall, cmd: str) -> tuple[str, ...]:
    world = call.session.sim.world
    chans = world.live_channels()
    calls = len({c.linkedid for c in chans})
    tail = (
        f"{len(chans)} active channel{'s' if len(chans) != 1 else ''}",
        f"{calls} active call{'s' if calls != 1 else ''}",
        f"{world.processed_calls} call{'s' if world.processed_calls != 1 else ''} processed",
    )
    if cmd == "core show calls":
        return tail[1:]
    rows = tuple(
        f"{c.name[:20]:<20} {(c.exten + '@' + c.context)[:20]:<20} {c.state_desc:<7} "
        f"{(c.app + '(' + c.appdata + ')')[:24]}"
        for c in _ordered(chans)
    )
    return ("Channel              Location             State   Application(Data)", *rows, *tail)


# ---- channels -----------------------------------------------------------------------


def _ordered(chans: list[Channel]) -> list[Channel]:
    """Asterisk walks its channel hash; the recordings show newest Local pair first."""
    groups: dict[str, list[Channel]] = {}
    for c in chans:
        groups.setdefault(c.name.rsplit(";", 1)[0], []).append(c)
    ordered = sorted(groups.values(), key=lambda g: min(x.created_at for x in g), reverse=True)
    out: list[Channel] = []
    for g in ordered:
        out.extend(sorted(g, key=lambda c: c.name))
    return out


def _hms(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


@action("CoreShowChannels")
async def core_show_channels(call: ActionCall) -> None:
    world = call.session.sim.world
    chans = _ordered(world.live_channels())
    call.list_start("Channels will follow")
    now = world.clock.now()
    for c in chans:
        call.event(
            "CoreShowChannel",
            *c.fields(),
            ("Application", c.app),
            ("ApplicationData", c.appdata),
            ("Duration", _hms(now - c.created_at)),
            ("BridgeId", c.bridge_id),
        )
    call.list_complete("CoreShowChannelsComplete", len(chans))


@action("Status")
async def status(call: ActionCall) -> None:
    world = call.session.sim.world
    name = call.msg.get("Channel")
    if name:
        ch = world.find_channel(name)
        if ch is None:
            call.error("No such channel")
            return
        chans = [ch]
    else:
        chans = _ordered(world.live_channels())
    wanted = [v.strip() for v in (call.msg.get("Variables") or "").split(",") if v.strip()]
    call.list_start("Channel status will follow")
    now = world.clock.now()
    for c in chans:
        fields = [
            ("Event", "Status"),
            ("Privilege", "Call"),
            *c.fields(),
            ("Type", c.tech),
            ("DNID", c.dnid),
            ("EffectiveConnectedLineNum", c.conn_num),
            ("EffectiveConnectedLineName", c.conn_name),
            ("TimeToHangup", str(int(c.timeout_at)) if c.timeout_at else "0"),
            ("BridgeID", c.bridge_id),
            ("Application", c.app),
            ("Data", c.appdata),
            ("Nativeformats", "(slin)" if c.tech == "Local" else "(ulaw)"),
            ("Readformat", "slin" if c.tech == "Local" else "ulaw"),
            ("Readtrans", ""),
            ("Writeformat", "slin" if c.tech == "Local" else "ulaw"),
            ("Writetrans", ""),
            ("Callgroup", "0"),
            ("Pickupgroup", "0"),
            ("Seconds", str(int(now - c.created_at))),
        ]
        for var in wanted:
            fields.append(("Variable", f"{var}={evaluate(world, c, var)}"))
        if call.action_id is not None:
            fields.append(("ActionID", call.action_id))
        call.session.send(fields)
    call.list_complete("StatusComplete", len(chans), ("Items", str(len(chans))))


def _variable_target(call: ActionCall) -> tuple[str, Channel | None] | None:
    """Getvar/Setvar's Variable and optional Channel; None once an error was answered."""
    var = call.msg.get("Variable")
    if not var:
        call.error("No variable specified")
        return None
    name = call.msg.get("Channel")
    if not name:
        return var, None
    ch = call.session.sim.world.find_channel(name)
    if ch is None:
        call.error("No such channel")
        return None
    return var, ch


@action("Getvar")
async def getvar(call: ActionCall) -> None:
    target = _variable_target(call)
    if target is None:
        return
    var, ch = target
    value = call.session.sim.dialplan.getvar(ch, var)
    call.reply("Success", ("Variable", var), ("Value", value))


@action("Setvar")
async def setvar(call: ActionCall) -> None:
    sim = call.session.sim
    target = _variable_target(call)
    if target is None:
        return
    var, ch = target
    value = call.msg.get("Value") or ""
    if sim.dialplan.is_refused(var):
        call.error("Variable not set")
        return
    written = sim.dialplan.write_function(ch, var, value)  # PERIODIC_HOOK(id)=on|off (g2)
    if written is False:
        call.error("Variable not set")
        return
    call.success("Variable Set")
    if written is None:
        sim.dialplan.setvar(ch, var, value)


@action("Hangup")
async def hangup(call: ActionCall) -> None:
    sim = call.session.sim
    name = call.msg.get("Channel") or ""
    cause_raw = (call.msg.get("Cause") or "").strip()
    cause: int | None = None
    if cause_raw:
        if not cause_raw.isdigit():
            call.error("Invalid cause")
            return
        cause = int(cause_raw)
    if not name:
        call.error("No channel specified")
        return
    if len(name) > 2 and name.startswith("/") and name.endswith("/"):
        try:
            rx = re.compile(name[1:-1])
        except re.error:
            call.error("Invalid regex")
            return
        matched = [c for c in _ordered(sim.world.live_channels()) if rx.search(c.name)]
        call.list_start("Channels hung up will follow")
        for c in matched:
            sim.dialplan.request_hangup(c, cause)
            call.session.send(
                [
                    ("Event", "ChannelHungup"),
                    ("Channel", c.name),
                    *([("ActionID", call.action_id)] if call.action_id else []),
                ]
            )
        call.list_complete("ChannelsHungupListComplete", len(matched))
        return
    ch = sim.world.find_channel(name)
    if ch is None:
        call.error("No such channel")
        return
    call.success("Channel Hungup")
    sim.dialplan.request_hangup(ch, cause)


@action("AbsoluteTimeout")
async def absolute_timeout(call: ActionCall) -> None:
    sim = call.session.sim
    ch = sim.world.find_channel(call.msg.get("Channel") or "")
    if ch is None:
        call.error("No such channel")
        return
    raw = (call.msg.get("Timeout") or "0").strip()
    try:
        seconds = float(raw)
    except ValueError:
        call.error("Invalid timeout")
        return
    sim.dialplan.absolute_timeout(ch, seconds)
    call.success("Timeout Set")


@action("Redirect")
async def redirect(call: ActionCall) -> None:
    sim = call.session.sim
    name = call.msg.get("Channel")
    if not name:
        call.error("Channel not specified")
        return
    ch = sim.world.find_channel(name)
    if ch is None:
        call.error("Channel specified does not exist")
        return
    exten = call.msg.get("Exten") or ""
    context = call.msg.get("Context") or ch.context
    prio_raw = call.msg.get("Priority") or "1"
    if not prio_raw.isdigit():
        call.error("Invalid priority")
        return
    if not sim.dialplan.redirect(ch, context, exten, int(prio_raw)):
        call.error("Redirect failed")
        return
    call.success("Redirect successful")


@action("Originate")
async def originate(call: ActionCall) -> None:
    sim = call.session.sim
    parsed = parse_originate(call.msg)
    if isinstance(parsed, str):
        call.error(parsed)
        return
    req: OriginateRequest = parsed
    if req.is_async:
        call.success("Originate successfully queued")
        sim.dialplan.originate(req)
        return
    outcome = await sim.dialplan.originate(req).wait()
    if outcome.reason == 4:
        call.success("Originate successfully queued")
    else:
        call.error("Originate failed")


@action("BridgeList")
async def bridge_list(call: ActionCall) -> None:
    world = call.session.sim.world
    btype = call.msg.get("BridgeType")
    bridges = [b for b in world.bridges.values() if not btype or b.bridge_type == btype]
    call.send_list("Bridge listing will follow", "BridgeListItem",
                   [b.fields() for b in bridges], "BridgeListComplete")


@action("PJSIPShowContacts")
async def pjsip_show_contacts(call: ActionCall) -> None:
    call.send_list("A listing of Contacts follows, presented as ContactList events",
                   "ContactList", call.session.sim.phones.contact_list_items(),
                   "ContactListComplete")


@action("PJSIPShowEndpoints")
async def pjsip_show_endpoints(call: ActionCall) -> None:
    call.send_list("A listing of Endpoints follows, presented as EndpointList events",
                   "EndpointList", call.session.sim.phones.endpoint_list_items(),
                   "EndpointListComplete")


@action("QueueStatus")
async def queue_status(call: ActionCall) -> None:
    queues = call.session.sim.queues
    items = queues.status_items(call.msg.get("Queue"), call.msg.get("Member"))
    call.list_start("Queue status will follow")
    for name, fields in items:
        call.event(name, *fields)
    call.list_complete("QueueStatusComplete", len(items))


@action("QueueSummary")
async def queue_summary(call: ActionCall) -> None:
    items = call.session.sim.queues.summary_items(call.msg.get("Queue"))
    call.send_list("Queue summary will follow", "QueueSummary", items, "QueueSummaryComplete")


@action("QueuePause")
async def queue_pause(call: ActionCall) -> None:
    queues = call.session.sim.queues
    iface = call.msg.get("Interface") or ""
    paused = (call.msg.get("Paused") or "").strip().lower() in ("true", "yes", "1")
    ok = queues.set_paused(
        iface, paused, queue=call.msg.get("Queue"), reason=call.msg.get("Reason") or ""
    )
    if not ok:
        call.error("Interface not found")
        return
    call.success("Interface paused successfully" if paused else "Interface unpaused successfully")


@action("UserEvent")
async def user_event(call: ActionCall) -> None:
    name = call.msg.get("UserEvent")
    if not name:
        call.error("UserEvent header missing")
        return
    skip = ("action", "actionid", "userevent")
    extra = [(k, v) for k, v in call.msg.headers if k.lower() not in skip]
    call.success("Event Sent")
    call.session.sim.world.emit("UserEvent", [("UserEvent", name), *extra])


import sim.astdb_actions  # noqa: E402,F401  (registers DBGet/DBPut/DBDel)

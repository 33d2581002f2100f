"""Reading the AMI/AGI recordings of a real Asterisk 22 and normalising AMI frames so a
simulator run can be compared with them frame by frame."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "asterisk"
_MARKER = re.compile(rb"--- (TX|RX|EV) t=\+([0-9.]+)s (\d+) bytes ---\n")

Frame = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Chunk:
    direction: str  # TX client -> Asterisk, RX Asterisk -> client, EV recorder note
    t: float
    data: bytes


def timeline(path: Path) -> list[Chunk]:
    raw = path.read_bytes()
    data = raw[raw.index(b"\n") + 1 :]
    out: list[Chunk] = []
    pos = 0
    while pos < len(data):
        m = _MARKER.match(data, pos)
        assert m, f"{path.name}: no marker at {pos}"
        size = int(m.group(3))
        body = data[m.end() : m.end() + size]
        out.append(Chunk(m.group(1).decode(), float(m.group(2)), body))
        pos = m.end() + size
        if m.group(1) == b"EV" and data[pos : pos + 1] == b"\n":
            pos += 1
    return out


def split_frames(data: bytes) -> tuple[bytes, list[Frame], bytes]:
    """(banner line, complete frames, leftover bytes) of an AMI byte stream."""
    banner = b""
    if data.startswith(b"Asterisk Call Manager"):
        nl = data.index(b"\r\n") + 2
        banner, data = data[:nl], data[nl:]
    frames: list[Frame] = []
    while b"\r\n\r\n" in data:
        raw, data = data.split(b"\r\n\r\n", 1)
        frames.append(parse_frame(raw))
    return banner, frames, data


def parse_frame(raw: bytes) -> Frame:
    out = []
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(": ")
        if not sep:
            key, value = line.rstrip(":"), ""
        out.append((key, value))
    return tuple(out)


@dataclass(frozen=True)
class TxStep:
    t: float
    data: bytes
    frames_before: int  # complete RX frames the client had received before sending
    gap: float  # seconds since the last thing (RX or TX) before this send


def ami_script(path: Path) -> tuple[list[TxStep], list[Frame], float]:
    """The client's sends (with how many frames preceded each) and the frames received."""
    rx = b""
    steps: list[TxStep] = []
    end = 0.0
    last = 0.0
    for c in timeline(path):
        end = max(end, c.t)
        if c.direction == "RX":
            rx += c.data
            last = c.t
        elif c.direction == "TX":
            steps.append(TxStep(c.t, c.data, len(split_frames(rx)[1]), max(0.0, c.t - last)))
            last = c.t
    return steps, split_frames(rx)[1], end


@dataclass(frozen=True)
class AgiStep:
    delay: float  # seconds between the previous reply (or env block) and this command
    command: bytes


def agi_script(path: Path) -> tuple[list[AgiStep], float]:
    """The FastAGI server's commands with their pauses, and the pause before it closed."""
    steps: list[AgiStep] = []
    last_rx = 0.0
    close_delay = 0.0
    for c in timeline(path):
        if c.direction == "RX":
            last_rx = c.t
        elif c.direction == "TX":
            steps.append(AgiStep(max(0.0, c.t - last_rx), c.data))
        elif c.direction == "EV" and b"socket closed" in c.data:
            close_delay = max(0.0, c.t - last_rx)
    return steps, close_delay


# ---- normalising ------------------------------------------------------------------------

_CHAN = re.compile(r"((?:Local/[^@\s,]+@[A-Za-z0-9_-]+?|PJSIP/[A-Za-z0-9_]+))-([0-9a-f]{8})")
_AGI_PORT = re.compile(r"agi://127\.0\.0\.1:\d+/")
_UID = re.compile(r"\b\d{10}\.\d+\b")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
VOLATILE = {
    "Timestamp",
    "EventTV",
    "SessionTV",
    "SessionID",
    "RemoteAddress",
    "Uptime",
    "LastReload",
    "CoreStartupDate",
    "CoreStartupTime",
    "CoreReloadDate",
    "CoreReloadTime",
    "StartTime",
    "AnswerTime",
    "EndTime",
    "Duration",
    "BillableSeconds",
    "Seconds",
    "CommandId",
    "CallId",
    "ExpirationTime",
    "Challenge",
    "TimeToHangup",
    "LocalAddress",
}
TIMED_VARS = {
    "ANSWEREDTIME",
    "ANSWEREDTIME_MS",
    "DIALEDTIME",
    "DIALEDTIME_MS",
    "RINGTIME",
    "RINGTIME_MS",
    "BRIDGEPVTCALLID",
}


class Normaliser:
    """Replaces ids, uniqueids, timestamps and durations by stable placeholders.

    Channel counters and bridge ids are numbered by first appearance; uniqueids become the
    (normalised) name of the channel that owns them, learnt from Newchannel events.
    """

    def __init__(self) -> None:
        self._counters: dict[str, str] = {}
        self._uids: dict[str, str] = {}
        self._bridges: dict[str, str] = {}

    def learn(self, frames: Iterable[Frame]) -> None:
        for f in frames:
            d = dict(f)
            if d.get("Event") == "Newchannel":
                self._uids.setdefault(d["Uniqueid"], "<uid " + self._chan(d["Channel"]) + ">")

    def _chan(self, text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            # Each channel technology counts on its own (h3: PJSIP-00000002 beside
            # Local-00000000), so the counter alone does not name a channel.
            key = m.group(1).split("/", 1)[0] + "-" + m.group(2)
            if key not in self._counters:
                self._counters[key] = f"#{len(self._counters) + 1}"
            return f"{m.group(1)}-{self._counters[key]}"

        return _CHAN.sub(sub, text)

    def _uuid(self, m: re.Match[str]) -> str:
        key = m.group(0)
        if key not in self._bridges:
            self._bridges[key] = f"<bridge {len(self._bridges) + 1}>"
        return self._bridges[key]

    def value(self, key: str, value: str, frame: dict[str, str]) -> str:
        if key in VOLATILE and value not in ("", "<unknown>"):
            return "<volatile>"
        if key == "Response" and frame.get("Event") == "ChallengeResponseFailed":
            return "<volatile>"
        if key == "Value" and frame.get("Variable") in TIMED_VARS and value:
            return "<volatile>"
        if key == "ObjectName" and ";@" in value:
            return value.split(";@")[0] + ";@<hash>"
        if key == "Duration" or (key == "Wait" and value.isdigit()):
            return "<volatile>"
        if key == "Value" and frame.get("Variable") == "RTPAUDIOQOS":
            # ssrc is random; packet counts follow the real media path, which no one models
            return re.sub(r"\b(ssrc|txcount|rxcount)=\d+", r"\1=<n>", value)
        if key == "Result" and frame.get("Event") == "AGIExecEnd":
            return value
        value = _AGI_PORT.sub("agi://127.0.0.1:<port>/", value)
        value = self._chan(value)
        value = _UUID.sub(self._uuid, value)
        value = _UID.sub(lambda m: self._uids.get(m.group(0), "<uid ?>"), value)
        return value

    def frame(self, f: Frame) -> Frame:
        d = dict(f)
        return tuple((k, self.value(k, v, d)) for k, v in f)


# ---- comparing --------------------------------------------------------------------------

LIST_ITEM_EVENTS = {
    "CoreShowChannel",
    "CoreShowChannelsComplete",
    "Status",
    "StatusComplete",
    "BridgeListItem",
    "BridgeListComplete",
    "ContactList",
    "ContactListComplete",
    "EndpointList",
    "EndpointListComplete",
    "ChannelHungup",
    "ChannelsHungupListComplete",
    "QueueParams",
    "QueueMember",
    "QueueEntry",
    "QueueStatusComplete",
}
ASYNC_EVENTS = {"DeviceStateChange", "Cdr", "OriginateResponse"}  # other threads: order varies


def is_reply(f: Frame) -> bool:
    return f[0][0] == "Response" or (f[0][0] == "Event" and f[0][1] in LIST_ITEM_EVENTS)


def stream_key(f: Frame) -> tuple[str, ...]:
    d = dict(f)
    ev = d.get("Event", "")
    if ev == "Cdr":
        return ("Cdr", d["Channel"])
    if ev == "DeviceStateChange":
        return ("Device", d["Device"])
    if ev == "OriginateResponse":
        return ("OriginateResponse", d.get("ActionID", ""))
    if ev in ("DialBegin", "DialState", "DialEnd") and "Channel" not in d:
        return ("OriginateDial", d["DestChannel"])
    if ev in ("BridgeCreate", "BridgeDestroy"):
        return ("Bridge", d["BridgeUniqueid"])
    if ev.startswith("ChanSpy"):
        return ("ChanSpy", d["SpyerChannel"])
    if ev == "LocalBridge":
        return ("LocalBridge", d["LocalOneChannel"])
    if ev == "PeerStatus":
        return ("Peer", d["Peer"])
    if ev == "ContactStatus":
        return ("Contact", d["URI"])
    if ev in ("SuccessfulAuth", "ChallengeSent", "ChallengeResponseFailed", "RequestBadFormat"):
        return ("Security", d.get("Service", ""), d.get("AccountID", ""))
    if "Channel" in d:
        return ("Channel", d["Channel"])
    return (ev,)


def normalise_all(frames: list[Frame]) -> list[Frame]:
    n = Normaliser()
    n.learn(frames)
    return [n.frame(f) for f in frames]


def normalise_env(block: bytes, frames: list[Frame]) -> dict[str, str]:
    """A FastAGI env block with the ids of the same session's AMI frames normalised (the
    channel and uniqueid it names are those of that session); agi_threadid dropped."""
    n = Normaliser()
    n.learn(frames)
    for f in frames:
        n.frame(f)  # channel counters numbered in AMI order
    env: dict[str, str] = {}
    for line in block.decode().split("\n"):
        key, sep, value = line.partition(": ")
        if sep and key != "agi_threadid":
            env[key] = n.value(key, value, {})
    return env


def render(f: Frame) -> str:
    return " | ".join(f"{k}: {v}" for k, v in f)


def compare(recorded: list[Frame], got: list[Frame], *, exact_order: bool) -> list[str]:
    """Human-readable differences; empty when the run matches the recording."""
    rec = normalise_all(recorded)
    sim = normalise_all(got)
    problems: list[str] = []
    rec_replies = [f for f in rec if is_reply(f)]
    sim_replies = [f for f in sim if is_reply(f)]
    problems += _diff("replies", rec_replies, sim_replies)
    streams: dict[tuple[str, ...], tuple[list[Frame], list[Frame]]] = {}
    for f in rec:
        if not is_reply(f):
            streams.setdefault(stream_key(f), ([], []))[0].append(f)
    for f in sim:
        if not is_reply(f):
            streams.setdefault(stream_key(f), ([], []))[1].append(f)
    for key, (a, b) in streams.items():
        if key[0] == "Device":
            # Device state is recomputed by another thread and can lag (g5): compare how many
            # changes each device saw and where it ended up.
            a, b = _device_summary(a), _device_summary(b)
        problems += _diff("/".join(key), a, b)
    if exact_order:
        a_order = [f for f in rec if not is_reply(f) and dict(f).get("Event") not in ASYNC_EVENTS]
        b_order = [f for f in sim if not is_reply(f) and dict(f).get("Event") not in ASYNC_EVENTS]
        problems += _diff("global order", a_order, b_order, limit=3)
    return problems


def _device_summary(frames: list[Frame]) -> list[Frame]:
    if not frames:
        return []
    last = dict(frames[-1])
    return [(("Device", last["Device"]), ("Changes", str(len(frames))), ("Final", last["State"]))]


def _diff(name: str, a: list[Frame], b: list[Frame], limit: int = 2) -> list[str]:
    out: list[str] = []
    for i in range(max(len(a), len(b))):
        fa = a[i] if i < len(a) else None
        fb = b[i] if i < len(b) else None
        if fa == fb:
            continue
        out.append(
            f"[{name}] #{i}:\n   recorded: {render(fa) if fa else '(none)'}\n"
            f"   sim:      {render(fb) if fb else '(none)'}"
        )
        if len(out) >= limit:
            out.append(f"[{name}] ... recorded {len(a)} frames, sim {len(b)}")
            break
    return out

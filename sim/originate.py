"""The Originate action's parameters, parsed and validated like manager.c does."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sim.ami_codec import Message

_CID = re.compile(r'^\s*(?:"([^"]*)"|([^<]*?))\s*<([^>]*)>\s*$')


def parse_callerid(raw: str) -> tuple[str, str]:
    """`"Name" <num>` / `Name <num>` / `num` -> (num, name)."""
    m = _CID.match(raw)
    if m:
        name = m.group(1) if m.group(1) is not None else (m.group(2) or "").strip()
        return m.group(3).strip(), name
    raw = raw.strip()
    if raw and all(ch.isdigit() or ch in "+*#" for ch in raw):
        return raw, ""
    return "", raw


def split_app_args(text: str) -> list[str]:
    """Asterisk's AST_STANDARD_APP_ARGS as manager.c applies it to each `Variable:` header
    (main/app.c __ast_app_separate_args with remove_chars): commas split only outside
    parentheses, brackets and double quotes; a backslash keeps the next character; quotes and
    escaping backslashes are removed. So `PJSIP_HEADER(add,Alert-Info)=a\\,b` is one
    variable."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch in "([":
            depth += 1
            cur.append(ch)
        elif ch in ")]":
            depth = max(0, depth - 1)
            cur.append(ch)
        elif ch == "," and depth == 0 and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


@dataclass(frozen=True)
class OriginateRequest:
    channel: str
    context: str = ""
    exten: str = ""
    priority: int = 1
    application: str = ""
    data: str = ""
    timeout_ms: int = 30000
    caller_num: str | None = None
    caller_name: str | None = None
    variables: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    channel_id: str | None = None
    other_channel_id: str | None = None
    action_id: str | None = None
    is_async: bool = True

    @property
    def has_callerid(self) -> bool:
        return self.caller_num is not None


def parse_originate(msg: Message) -> OriginateRequest | str:
    """The request, or the error message Asterisk answers with."""
    channel = (msg.get("Channel") or "").strip()
    if not channel:
        return "Channel not specified"
    if "/" not in channel:
        return "Invalid channel"
    prio_raw = (msg.get("Priority") or "1").strip()
    if not prio_raw.isdigit():
        return "Invalid priority"
    timeout_raw = (msg.get("Timeout") or "30000").strip()
    try:
        timeout_ms = int(timeout_raw)
    except ValueError:
        return "Invalid timeout"
    if timeout_ms <= 0:
        timeout_ms = 30000
    variables: list[tuple[str, str]] = []
    for header in msg.get_all("Variable"):
        for part in split_app_args(header):
            if "=" in part:
                k, v = part.split("=", 1)
                variables.append((k.strip(), v))
    cid_raw = msg.get("CallerID")
    num: str | None = None
    name: str | None = None
    if cid_raw:
        num, name = parse_callerid(cid_raw)
    is_async = (msg.get("Async") or "").strip().lower() in ("true", "yes", "1", "on")
    return OriginateRequest(
        channel=channel,
        context=(msg.get("Context") or "").strip(),
        exten=(msg.get("Exten") or "").strip(),
        priority=int(prio_raw),
        application=(msg.get("Application") or "").strip(),
        data=msg.get("Data") or "",
        timeout_ms=timeout_ms,
        caller_num=num,
        caller_name=name,
        variables=tuple(variables),
        channel_id=(msg.get("ChannelId") or None),
        other_channel_id=(msg.get("OtherChannelId") or None),
        action_id=msg.get("ActionID"),
        is_async=is_async,
    )

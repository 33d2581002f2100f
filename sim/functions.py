"""Channel variables and the few dialplan functions a gateway asks for over AMI/AGI."""

from __future__ import annotations

import re
import time

from sim.astdb import split_db_arg
from sim.channels import Channel
from sim.world import World

_FUNC = re.compile(r"^([A-Z_]+)\((.*)\)$", re.IGNORECASE)
_SUBST = re.compile(r"\$\{([^{}]+)\}")
_FRACTION = re.compile(r"%([1-6]?)q")
# Functions Asterisk refuses over AMI/AGI unless live_dangerously = yes.
DANGEROUS = {"PERIODIC_HOOK", "SHELL", "FILE", "DB_DELETE", "ODBC", "CURL", "EVAL"}


def builtin(ch: Channel, name: str) -> str | None:
    table = {
        "EXTEN": ch.exten,
        "CONTEXT": ch.context,
        "PRIORITY": str(ch.priority),
        "CHANNEL": ch.name,
        "UNIQUEID": ch.uniqueid,
        "LANGUAGE": ch.language,
        "ACCOUNTCODE": ch.accountcode,
        "HANGUPCAUSE": str(ch.hangup_cause),
    }
    return table.get(name)


def function(world: World, ch: Channel | None, fname: str, arg: str) -> str:
    fname = fname.upper()
    arg = arg.strip()
    if fname == "GLOBAL":
        return world.globals.get(arg, "")
    if fname == "DB":
        found = split_db_arg(arg)
        return (world.astdb.get(*found) or "") if found else ""
    if fname == "DB_DELETE":  # the value, and the entry is gone (func_db.c)
        found = split_db_arg(arg)
        if found is None:
            return ""
        value = world.astdb.get(*found) or ""
        world.astdb.delete(*found)
        return value
    if fname == "STRFTIME":
        return strftime(world.clock.now(), arg)
    if ch is None:
        return ""
    if fname == "CHANNEL":
        table = {
            "linkedid": ch.linkedid,
            "uniqueid": ch.uniqueid,
            "name": ch.name,
            "state": ch.state_desc,
            "language": ch.language,
            "accountcode": ch.accountcode,
            "context": ch.context,
            "exten": ch.exten,
            "priority": str(ch.priority),
            "channeltype": ch.tech,
            "peer": ch.variables.get("BRIDGEPEER", ""),
        }
        return table.get(arg.lower(), "")
    if fname == "CALLERID":
        key = arg.lower()
        num = "" if ch.cid_num == "<unknown>" else ch.cid_num
        name = "" if ch.cid_name == "<unknown>" else ch.cid_name
        if key in ("num", "number"):
            return num
        if key == "name":
            return name
        if key == "all":
            return f'"{name}" <{num}>'
        return ""
    if fname == "CONNECTEDLINE":
        key = arg.lower()
        if key in ("num", "number"):
            return "" if ch.conn_num == "<unknown>" else ch.conn_num
        if key == "name":
            return "" if ch.conn_name == "<unknown>" else ch.conn_name
        return ""
    if fname == "LEN":
        return str(len(arg))
    return ""


def evaluate(world: World, ch: Channel | None, expr: str, *, dialplan: bool = False) -> str:
    """Value of a variable name or `FUNC(args)`, as Getvar would report it. Dangerous
    functions are refused to AMI and AGI without live_dangerously; the dialplan itself
    (`dialplan=True`: an `h` extension's Set) may always use them."""
    expr = expr.strip()
    m = _FUNC.match(expr)
    if m:
        if m.group(1).upper() in DANGEROUS and not (dialplan or world.config.live_dangerously):
            return ""
        return function(world, ch, m.group(1),
                        substitute(world, ch, m.group(2), dialplan=dialplan))
    if expr == "EPOCH":
        return str(int(world.clock.now()))
    if ch is not None:
        if expr in ch.variables:
            return ch.variables[expr]
        value = builtin(ch, expr)
        if value is not None:
            return value
    return world.globals.get(expr, "")


def substitute(world: World, ch: Channel | None, text: str, *, dialplan: bool = False) -> str:
    """Expand `${...}` references (innermost first), as the dialplan does."""
    for _ in range(20):
        new = _SUBST.sub(lambda m: evaluate(world, ch, m.group(1), dialplan=dialplan), text)
        if new == text:
            return new
        text = new
    return text


def strftime(now: float, arg: str) -> str:
    """STRFTIME([epoch][,[timezone][,format]]) in the simulator's timezone (UTC): no epoch
    means now, to the microsecond; `%q` / `%1q`..`%6q` are fractions of a second
    (ast_strftime), `%s` the epoch seconds; the rest is C strftime."""
    parts = arg.split(",", 2)
    epoch_text = parts[0].strip()
    fmt = parts[2] if len(parts) > 2 and parts[2] else "%c"
    try:
        when = float(epoch_text) if epoch_text else now
    except ValueError:
        when = now
    usec = min(int((when % 1) * 1_000_000 + 1e-6), 999_999)  # truncated, as tv_usec

    def fraction(m: re.Match[str]) -> str:
        digits = int(m.group(1) or 3)
        return f"{usec // 10 ** (6 - digits):0{digits}d}"

    fmt = _FRACTION.sub(fraction, fmt).replace("%s", str(int(when)))
    return time.strftime(fmt, time.gmtime(when))

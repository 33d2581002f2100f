"""Runs AGI() for a simulated channel through sim/fastagi.py and reports it on AMI.

FastAgiCall speaks the wire; this wrapper adds what Asterisk shows on the manager side while
the script runs: AGIExecStart/AGIExecEnd per command, VarSet for SET VARIABLE (and the
PLAYBACKSTATUS that STREAM FILE sets), SoftHangupRequest for the AGI HANGUP command.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from sim.fastagi import FastAgiCall, FastAgiOutcome

RESULT_TEXT = {
    200: "Success",
    510: "Invalid or unknown command",
    511: "Command Not Permitted on a dead channel or intercept routine",
    520: "Usage",
}


# A channel variable holding the DTMF digits the simulated caller types during AGI().
DTMF_VAR = "SIM_DTMF"


class AgiHooks(Protocol):
    def command_started(self, command: str) -> None: ...
    def variable_set(self, name: str, value: str) -> None: ...
    def hangup_command(self) -> None: ...
    def command_finished(self, command: str, code: int) -> None: ...


@dataclass(frozen=True)
class AgiTarget:
    """`agi://host[:port]/script?query` split the way res_agi.c launch_netscript does."""

    url: str
    host: str
    port: int
    script: str

    @staticmethod
    def parse(url: str) -> AgiTarget:
        if not url.startswith("agi://"):
            raise ValueError(f"only agi:// URLs are simulated, got {url!r}")
        rest = url[len("agi://") :]
        hostport, _, script = rest.partition("/")
        parts = urlsplit("//" + hostport)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 4573
        return AgiTarget(url=url, host=host, port=port, script=script)


def split_app_data(data: str) -> tuple[str, tuple[str, ...]]:
    """AGI(url,arg1,arg2) application data -> (url, args)."""
    parts = data.split(",")
    return parts[0].strip(), tuple(parts[1:])


class ObservedAgiCall(FastAgiCall):
    """FastAgiCall that reports each command to `hooks` as it runs."""

    def __init__(
        self,
        target: AgiTarget,
        env_overrides: Mapping[str, str],
        variables: Mapping[str, str],
        *,
        args: Sequence[str],
        hooks: AgiHooks,
    ) -> None:
        super().__init__(
            target.host, target.port, target.script, env_overrides, variables, args=args,
            dtmf=variables.get(DTMF_VAR, ""),  # what the caller will type (prepaid IVR)
        )
        self._hooks = hooks

    def _handle(self, raw: bytes) -> list[bytes]:
        text = raw.decode("utf-8", "surrogateescape")
        self._hooks.command_started(text)
        reply = super()._handle(raw)
        head = reply[0][:3] if reply else b"200"
        code = int(head) if head.isdigit() else 200
        self._hooks.command_finished(text, code)
        return reply

    def _setvar(self, name: str, value: str) -> None:
        super()._setvar(name, value)
        self._hooks.variable_set(name, value)

    def _hangup(self, argv: list[str]) -> bytes:
        was_dead = self.dead
        reply = super()._hangup(argv)
        if self.dead and not was_dead:
            self._hooks.hangup_command()
        return reply


__all__ = ["DTMF_VAR", "RESULT_TEXT", "AgiHooks", "AgiTarget", "FastAgiOutcome", "ObservedAgiCall"]

"""The systemd notify protocol (sd_notify), spoken directly over the datagram socket.

With `Type=notify` systemd waits for READY=1 before it calls the service started, and with
`WatchdogSec` it restarts a daemon whose event loop stops sending WATCHDOG=1: a wedged
gateway is worse than a restarted one, since Asterisk then times out every AGI call.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self._address: str | None = None
        if path:
            # '@' means the abstract namespace, written with a leading NUL byte.
            self._address = "\0" + path[1:] if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_interval: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1_000_000 / 2

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *states: str) -> None:
        if self._address is None:
            return
        payload = "\n".join(states).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(payload, self._address)
        except OSError as exc:
            log.warning("systemd_notify_failed", error=str(exc), states=list(states))

    async def watchdog(self) -> None:
        """Ping the watchdog from the event loop itself, so a blocked loop stops the pings."""
        if self.watchdog_interval is None or self._address is None:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)

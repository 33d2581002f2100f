"""The daemon's HTTP side: health, readiness and metrics (the /v1/ API mounts here too).

/healthz says the process and its loop are alive (for the watchdog of an orchestrator);
/readyz says whether calls can be decided right now: Redis answers and every configured
Asterisk has a logged-in AMI session, naming whichever is not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from gateway.metrics import Metrics


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


ReadinessProbe = Callable[[], Awaitable[Sequence[Check]]]


def build_app(metrics: Metrics, readiness: ReadinessProbe) -> web.Application:
    app = web.Application()

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        checks = await readiness()
        failing = {c.name: c.detail for c in checks if not c.ok}
        body = {
            "ready": not failing,
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
            "not_ready": failing,
        }
        return web.json_response(body, status=200 if not failing else 503)

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), content_type="text/plain",
                            charset="utf-8", headers={"X-Content-Version": "0.0.4"})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app

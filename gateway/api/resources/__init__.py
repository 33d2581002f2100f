"""The API's resources, one module per resource; each exports `ROUTES`.

To add one (cards, vouchers, rates, CDR export, campaigns): write a module here with its
routes, add its service to `ApiDeps` as an optional field named in the routes' `needs`,
and list the module's `ROUTES` below (or pass them to `mount_api(extra_routes=...)`).
"""

from __future__ import annotations

from gateway.api.resources import (
    calls,
    campaigns,
    cards,
    cdrs,
    click_to_call,
    hardware,
    leads,
    limits_scopes,
    limits_tenants,
    meta,
    preview,
    rates,
    tokens,
    vouchers,
)
from gateway.api.routes import Route

DEFAULT_ROUTES: tuple[Route, ...] = (
    *meta.ROUTES,
    *tokens.ROUTES,
    *limits_tenants.ROUTES,
    *limits_scopes.ROUTES,
    *calls.ROUTES,
    *hardware.ROUTES,
    *click_to_call.ROUTES,
    *cards.ROUTES,
    *vouchers.ROUTES,
    *rates.ROUTES,
    *cdrs.ROUTES,
    *campaigns.ROUTES,
    *leads.ROUTES,
    *preview.ROUTES,
)

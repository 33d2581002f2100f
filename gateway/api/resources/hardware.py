"""Hardware profiles (data about device models: readable by any token) and the desk
phones registered through Asterisk (site-wide tokens only: the registry knows endpoints,
not which tenant owns them)."""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

from gateway.api.access import Scope
from gateway.api.errors import not_found
from gateway.api.resources.limits_scopes import SITE_CHANGERS
from gateway.api.routes import ALL_ROLES, Param, Reply, RequestContext, Route
from gateway.api.schemas import NAME, list_of
from gateway.devices import DeviceSnapshot
from hw_profiles import KINDS, AnyProfile

_COMMON = ("name", "vendor", "model", "origin", "sources", "notes")

PROFILE: dict[str, Any] = {
    "type": "object",
    "required": ["name", "kind", "vendor", "model", "capacity", "sources", "notes", "details"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": list(KINDS)},
        "vendor": {"type": "string"},
        "model": {"type": "string"},
        "capacity": {"type": "integer", "description": "calls the device carries at once"},
        "sources": {"type": "array", "items": {"type": "string"}},
        "notes": {"type": "string"},
        "details": {"type": "object", "description": "the fields of this kind of profile"},
    },
}
CONTACT: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["uri", "status", "user_agent", "roundtrip_usec"],
    "properties": {"uri": {"type": "string"}, "status": {"type": "string"},
                   "user_agent": {"type": ["string", "null"]},
                   "roundtrip_usec": {"type": ["integer", "null"]}},
}
DEVICE: dict[str, Any] = {
    "type": "object",
    "required": ["endpoint", "registered", "reachable", "user_agent", "profile",
                 "profile_matched", "device_state", "calls_in_progress", "call_limit",
                 "free_calls", "auth_failures", "contacts"],
    "additionalProperties": False,
    "properties": {
        "endpoint": {"type": "string"},
        "registered": {"type": "boolean"},
        "reachable": {"type": "boolean"},
        "user_agent": {"type": ["string", "null"]},
        "profile": {"type": "string"},
        "profile_matched": {"type": "boolean",
                            "description": "false while on the `default` profile"},
        "device_state": {"type": "string"},
        "calls_in_progress": {"type": "integer"},
        "call_limit": {"type": "integer"},
        "free_calls": {"type": "integer"},
        "auth_failures": {"type": "integer"},
        "contacts": {"type": "array", "items": CONTACT},
    },
}


def profile_json(p: AnyProfile) -> dict[str, Any]:
    details: dict[str, Any] = {}
    for f in fields(p):
        if f.name in _COMMON:
            continue
        value = getattr(p, f.name)
        if isinstance(value, re.Pattern):
            value = value.pattern
        elif isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        details[f.name] = value
    return {"name": p.name, "kind": p.kind, "vendor": p.vendor, "model": p.model,
            "capacity": p.capacity, "sources": list(p.sources), "notes": p.notes,
            "details": details}


def device_json(d: DeviceSnapshot) -> dict[str, Any]:
    return {
        "endpoint": d.endpoint, "registered": d.registered, "reachable": d.reachable,
        "user_agent": d.user_agent, "profile": d.profile.name,
        "profile_matched": d.profile_matched, "device_state": d.device_state,
        "calls_in_progress": d.calls_in_progress, "call_limit": d.call_limit,
        "free_calls": d.free_calls, "auth_failures": d.auth_failures,
        "contacts": [{"uri": c.uri, "status": c.status, "user_agent": c.user_agent,
                      "roundtrip_usec": c.roundtrip_usec} for c in d.contacts],
    }


async def list_profiles(ctx: RequestContext) -> Reply:
    profiles = ctx.deps.profiles
    assert profiles is not None
    kind = ctx.query.get("kind")
    chosen = profiles.of_kind(kind) if kind else [profiles.profiles[n] for n in profiles.names()]
    return Reply({"profiles": [profile_json(p) for p in chosen]})


async def show_profile(ctx: RequestContext) -> Reply:
    profiles = ctx.deps.profiles
    assert profiles is not None
    profile = profiles.get(ctx.path["name"])
    if profile is None:
        raise not_found("unknown_profile", f"no hardware profile named {ctx.path['name']!r}")
    return Reply(profile_json(profile))


async def list_devices(ctx: RequestContext) -> Reply:
    devices = ctx.deps.devices
    assert devices is not None
    return Reply({"devices": [device_json(d) for d in devices.devices()]})


async def show_device(ctx: RequestContext) -> Reply:
    devices = ctx.deps.devices
    assert devices is not None
    device = devices.device(ctx.path["endpoint"])
    if device is None:
        raise not_found("unknown_device",
                        f"no desk phone {ctx.path['endpoint']!r} has been seen by Asterisk")
    return Reply(device_json(device))


ROUTES = (
    Route("GET", "/v1/hw/profiles", "list_hw_profiles", "Hardware profiles", "hardware",
          list_profiles, ALL_ROLES, Scope.ANY_TOKEN, list_of("profiles", PROFILE),
          query={"kind": Param({"type": "string", "enum": list(KINDS)},
                               "Only profiles of this kind.", "pri_span")},
          needs=("profiles",)),
    Route("GET", "/v1/hw/profiles/{name}", "get_hw_profile", "One hardware profile",
          "hardware", show_profile, ALL_ROLES, Scope.ANY_TOKEN, PROFILE,
          path_params={"name": Param(NAME, "Profile name.", "sangoma-a101-e1")},
          needs=("profiles",), not_found=True),
    Route("GET", "/v1/devices", "list_devices", "Desk phones seen through Asterisk",
          "hardware", list_devices, SITE_CHANGERS, Scope.SITE, list_of("devices", DEVICE),
          needs=("devices",)),
    Route("GET", "/v1/devices/{endpoint}", "get_device", "One desk phone", "hardware",
          show_device, SITE_CHANGERS, Scope.SITE, DEVICE,
          path_params={"endpoint": Param({"type": "string", "minLength": 1,
                                          "maxLength": 128},
                                         "PJSIP endpoint name.", "6001")},
          needs=("devices",), not_found=True),
)

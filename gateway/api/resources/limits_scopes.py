"""Trunk, number (DID), desk-phone and license-pool limits.

Trunks belong to the site (site-wide tokens only). Numbers, devices and pools belong to a
tenant and live under its path: `/v1/limits/tenants/{tenant}/numbers/{number}`. The lists
`/v1/limits/{trunks,numbers,devices,pools}` show what the token may see. A trunk's or
phone's capacity may be given by hardware profile name instead of a number.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gateway.api.access import Scope
from gateway.api.errors import invalid, unavailable
from gateway.api.resources.limits_tenants import CHANGERS
from gateway.api.resources.views import limit_settings, scope_json
from gateway.api.routes import ALL_ROLES, Param, Reply, RequestContext, Route
from gateway.api.schemas import COUNT, NAME, SCOPE_STATUS, TENANT_PARAM, TENANT_QUERY, list_of
from gateway.api.tokens import Role
from hw_profiles import AnyProfile, ProfileKind
from limits import LimitSettings, ScopeKind

SITE_CHANGERS = frozenset({Role.ADMIN, Role.OPERATOR})
TRUNK_PROFILE_KINDS: tuple[ProfileKind, ...] = ("fxo_gateway", "gsm_gateway", "pri_span",
                                                "sip_trunk")
PROFILE_NAME = {**NAME, "description": "a hardware profile name (GET /v1/hw/profiles)"}

TRUNK_CHANGE: dict[str, Any] = {
    "type": "object", "minProperties": 1, "additionalProperties": False,
    "properties": {
        "channels": {**COUNT, "description": "concurrent calls; null = unlimited"},
        "profile": {**PROFILE_NAME, "description": "take channels from this hardware profile "
                    "(a PRI span, FXO or GSM gateway, SIP trunk) instead of `channels`"},
        "cps": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1_000_000,
                "description": "new calls per second; null = no cap"},
    },
}


def _profile(ctx: RequestContext, name: str, kinds: tuple[ProfileKind, ...]) -> AnyProfile:
    profiles = ctx.deps.profiles
    if profiles is None:
        raise unavailable("profiles_unavailable",
                          "hardware profiles are not loaded on this gateway; give a number")
    profile = profiles.get(name)
    if profile is None:
        raise invalid("unknown_profile", f"no hardware profile named {name!r} "
                      "(see GET /v1/hw/profiles)", "profile")
    if profile.kind not in kinds:
        raise invalid("profile_kind", f"profile {name!r} is a {profile.kind}; this needs one "
                      f"of: {', '.join(kinds)}", "profile")
    return profile


def _capacity(ctx: RequestContext, field: str,
              kinds: tuple[ProfileKind, ...]) -> tuple[bool, int | None]:
    """(given, value) of a count that may come as a number or as a profile name."""
    body: dict[str, Any] = ctx.body
    if field in body and "profile" in body:
        raise invalid("conflicting_fields", f"give {field} or profile, not both", "profile")
    if "profile" in body:
        return True, _profile(ctx, body["profile"], kinds).capacity
    if field in body:
        return True, body[field]
    return False, None


# -- trunks ---------------------------------------------------------------------------

async def list_trunks(ctx: RequestContext) -> Reply:
    found = await limit_settings(ctx).list_scopes(ScopeKind.TRUNK)
    return Reply({"trunks": [scope_json(s) for s in found]})


async def show_trunk(ctx: RequestContext) -> Reply:
    return Reply(scope_json(await limit_settings(ctx).show(ScopeKind.TRUNK,
                                                           ctx.path["trunk"])))


async def change_trunk(ctx: RequestContext) -> Reply:
    trunk: str = ctx.path["trunk"]
    settings = limit_settings(ctx)
    given, channels = _capacity(ctx, "channels", TRUNK_PROFILE_KINDS)
    current = await settings.show(ScopeKind.TRUNK, trunk)
    if not given:
        channels = current.limit
    cps = ctx.body["cps"] if "cps" in ctx.body else current.cps
    await settings.set_trunk_limit(trunk, channels, cps)
    ctx.log.info("api_limits_changed", trunk=trunk, fields=sorted(ctx.body))
    return Reply(scope_json(await settings.show(ScopeKind.TRUNK, trunk)))


# -- tenant-owned scopes --------------------------------------------------------------

Setter = Callable[[LimitSettings, str, str, "int | None"], Awaitable[None]]


def _owned_routes(kind: ScopeKind, plural: str, param: str, field: str, field_doc: str,
                  setter: Setter, example: str, profile_kinds: tuple[ProfileKind, ...] = (),
                  ) -> tuple[Route, ...]:
    async def list_owned(ctx: RequestContext) -> Reply:
        settings = limit_settings(ctx)
        only = ctx.tenant_filter()
        found = await settings.list_scopes(kind, tenant=only)
        visible = set(await ctx.tenants.readable({s.tenant for s in found}))
        return Reply({plural: [scope_json(s) for s in found if s.tenant in visible]})

    async def show_owned(ctx: RequestContext) -> Reply:
        status = await limit_settings(ctx).show(kind, ctx.path[param],
                                                tenant=ctx.path["tenant"])
        return Reply(scope_json(status))

    async def change_owned(ctx: RequestContext) -> Reply:
        tenant, name = ctx.path["tenant"], ctx.path[param]
        given, value = _capacity(ctx, field, profile_kinds)
        if not given:  # pragma: no cover - the schema requires one of them
            raise invalid("field_required", f"{field} is required", field)
        settings = limit_settings(ctx)
        await setter(settings, tenant, name, value)
        ctx.log.info("api_limits_changed", tenant=tenant, scope=kind.value, name=name)
        return Reply(scope_json(await settings.show(kind, name, tenant=tenant)))

    props: dict[str, Any] = {field: {**COUNT, "description": field_doc}}
    body: dict[str, Any] = {"type": "object", "additionalProperties": False,
                            "properties": props}
    body_example: dict[str, Any] = {field: 2}
    if profile_kinds:
        props["profile"] = {**PROFILE_NAME, "description": f"take {field} from this "
                            f"hardware profile ({', '.join(profile_kinds)})"}
        body["minProperties"] = 1
        body_example = {"profile": "yealink-t46u"}
    else:
        body["required"] = [field]
    item = f"/v1/limits/tenants/{{tenant}}/{plural}/{{{param}}}"
    path_params = {"tenant": TENANT_PARAM,
                   param: Param(NAME, f"The {kind.value}'s name.", example)}
    return (
        Route("GET", f"/v1/limits/{plural}", f"list_{kind.value}_limits",
              f"List {kind.value} limits", "limits", list_owned, ALL_ROLES, Scope.FILTERED,
              list_of(plural, SCOPE_STATUS), query={"tenant": TENANT_QUERY},
              description=f"{plural.capitalize()} with a limit or calls in use, of the "
                          "tenants the token may see.",
              needs=("limits",)),
        Route("GET", item, f"get_{kind.value}_limit", f"A tenant's {kind.value} limit",
              "limits", show_owned, ALL_ROLES, Scope.TENANT, SCOPE_STATUS,
              path_params=path_params, needs=("limits",)),
        Route("PUT", item, f"put_{kind.value}_limit", f"Set a tenant's {kind.value} limit",
              "limits", change_owned, CHANGERS, Scope.TENANT, SCOPE_STATUS,
              path_params=path_params, body=body, body_example=body_example,
              needs=("limits",)),
    )


async def _set_number(s: LimitSettings, tenant: str, name: str, value: int | None) -> None:
    await s.set_number_limit(tenant, name, value)


async def _set_device(s: LimitSettings, tenant: str, name: str, value: int | None) -> None:
    await s.set_device_limit(tenant, name, value)


async def _set_pool(s: LimitSettings, tenant: str, name: str, value: int | None) -> None:
    await s.set_pool_size(tenant, name, value)


TRUNK_PARAM = Param(NAME, "The trunk (site-wide).", "pri-span-1")

ROUTES = (
    Route("GET", "/v1/limits/trunks", "list_trunk_limits", "List trunk limits", "limits",
          list_trunks, SITE_CHANGERS, Scope.SITE, list_of("trunks", SCOPE_STATUS),
          needs=("limits",)),
    Route("GET", "/v1/limits/trunks/{trunk}", "get_trunk_limit", "A trunk's limit", "limits",
          show_trunk, SITE_CHANGERS, Scope.SITE, SCOPE_STATUS,
          path_params={"trunk": TRUNK_PARAM}, needs=("limits",)),
    Route("PUT", "/v1/limits/trunks/{trunk}", "put_trunk_limit",
          "Set a trunk's channels (or hardware profile) and calls per second", "limits",
          change_trunk, SITE_CHANGERS, Scope.SITE, SCOPE_STATUS,
          description="Only the fields given change.",
          path_params={"trunk": TRUNK_PARAM}, body=TRUNK_CHANGE,
          body_example={"profile": "sangoma-a101-e1", "cps": 5}, needs=("limits",)),
    *_owned_routes(ScopeKind.NUMBER, "numbers", "number", "channels",
                   "concurrent calls on the DID; null = unlimited", _set_number,
                   "+4930123456"),
    *_owned_routes(ScopeKind.DEVICE, "devices", "device", "appearances",
                   "the phone's call appearances; null = unlimited", _set_device, "acme-100",
                   profile_kinds=("desk_phone",)),
    *_owned_routes(ScopeKind.POOL, "pools", "pool", "size",
                   "licenses in the pool; null = unlimited", _set_pool, "dialer_seat"),
)

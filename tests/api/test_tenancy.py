"""Invariant 4 over the whole API: every declared route (read from the mounted
declarations, not from a hand-written list) is called with tenant A's tokens on tenant
B's resources, and must refuse or show nothing of B's, and change nothing."""

from __future__ import annotations

from gateway.api import Role, Route, Scope
from gateway.api.validation import validate
from tests.api.conftest import (
    OTHER,
    RESELLER,
    SUB,
    SUBSUB,
    A,
    Api,
    B,
    call_route,
    redis_state,
)

# Strings that exist only in B's data (its tenant name is in every scope id and lease).
B_MARKERS = (B,)


def _tenant_roles() -> list[Role]:
    return [Role.ADMIN, Role.OPERATOR, Role.SUPERVISOR, Role.RESELLER]


def _assert_no_b(text: str, where: str) -> None:
    for marker in B_MARKERS:
        assert marker not in text, f"{where} leaked {marker!r}: {text[:300]}"


async def test_every_route_refuses_or_hides_another_tenant(world: Api) -> None:
    before = await redis_state(world.redis)
    checked: set[str] = set()
    for role in _tenant_roles():
        token = await world.token(role.value, A)
        for route in world.routes:
            if route.scope is not Scope.PUBLIC and role not in route.roles:
                got = await call_route(world, route, token, B)
                assert got.status == 403 and got.body["error"]["code"] == "role_forbidden", \
                    (route.name, role, got.text)
                continue
            where = f"{role} {route.method} {route.path}"
            if route.scope is Scope.TENANT:
                got = await call_route(world, route, token, B)
                assert got.status == 403, (where, got.text)
                assert got.body["error"]["code"] == "tenant_forbidden"
                assert got.body["error"]["field"] == "tenant"
            elif route.scope is Scope.SITE:
                got = await call_route(world, route, token, B)
                assert got.status == 403, (where, got.text)
                assert got.body["error"]["code"] == "site_token_required"
            elif route.scope is Scope.FILTERED:
                asked = await call_route(world, route, token, B, params={"tenant": B})
                assert asked.status == 403, (where, asked.text)
                assert asked.body["error"]["code"] == "tenant_forbidden"
                listed = await call_route(world, route, token, B)
                assert listed.status == 200, (where, listed.text)
                _assert_no_b(listed.text, where)
                assert A in listed.text, f"{where}: A's own data is missing"
            else:
                got = await call_route(world, route, token, B)
                assert got.status == 200, (where, got.text)
                _assert_no_b(got.text, where)
            checked.add(route.name)
    # every route was called by at least one role allowed on it
    assert checked == {r.name for r in world.routes}
    assert await redis_state(world.redis) == before


async def test_site_wide_tokens_see_every_tenant(world: Api) -> None:
    token = await world.token("operator", "*")
    for route in world.routes:
        if route.scope is Scope.FILTERED:
            listed = await call_route(world, route, token, B)
            assert listed.status == 200, (route.name, listed.text)
            assert A in listed.text and B in listed.text, route.name
            validate(route.response, listed.body)


async def test_reseller_sees_its_sub_tenants_only(world: Api) -> None:
    token = await world.token("reseller", RESELLER)
    for tenant in (RESELLER, SUB, SUBSUB):
        got = await world.call("GET", f"/v1/limits/tenants/{tenant}", token)
        assert got.status == 200, (tenant, got.text)
    for tenant in (A, B, OTHER):
        got = await world.call("GET", f"/v1/limits/tenants/{tenant}", token)
        assert got.status == 403 and got.body["error"]["code"] == "tenant_forbidden"
    for route in world.routes:
        if route.scope is not Scope.FILTERED:
            continue
        listed = await world.call(route.method, route.path, token)
        assert listed.status == 200, (route.name, listed.text)
        for hidden in (A, B, OTHER):
            assert hidden not in listed.text, (route.name, hidden)
        assert SUBSUB in listed.text, route.name
        validate(route.response, listed.body)
    tenants = await world.call("GET", "/v1/limits/tenants", token)
    assert [t["tenant"] for t in tenants.body["tenants"]] == [RESELLER, SUB, SUBSUB]
    calls = await world.call("GET", "/v1/calls", token)
    assert sorted(c["tenant"] for c in calls.body["calls"]) == [RESELLER, SUB, SUBSUB]
    assert calls.body["unleased"] == []


async def test_a_sub_tenant_sees_nothing_of_its_resellers(world: Api) -> None:
    token = await world.token("supervisor", SUBSUB)
    for route in world.routes:
        if route.scope is not Scope.FILTERED:
            continue
        listed = await world.call(route.method, route.path, token)
        assert listed.status == 200 and SUBSUB in listed.text, route.name
        for parent in (RESELLER, SUB):
            assert f"/{parent}/" not in listed.text, (route.name, parent, listed.text)
    # its own view of its calls still names every scope of its own
    calls = await world.call("GET", "/v1/calls", token)
    assert calls.body["calls"][0]["scopes"] == [f"tenant/{SUBSUB}/outbound",
                                                f"tenant/{SUBSUB}/total"]


async def test_reseller_changes_sub_tenants_but_not_itself_or_the_tree(world: Api) -> None:
    token = await world.token("reseller", RESELLER)
    got = await world.call("PUT", f"/v1/limits/tenants/{SUBSUB}", token,
                           json_body={"total": 3})
    assert got.status == 200 and got.body["total"]["limit"] == 3
    before = await redis_state(world.redis)
    own = await world.call("PUT", f"/v1/limits/tenants/{RESELLER}", token,
                           json_body={"total": 1000})
    assert own.status == 403 and own.body["error"]["code"] == "tenant_forbidden"
    adopt = await world.call("PUT", f"/v1/limits/tenants/{SUB}", token,
                             json_body={"total": 5, "reseller": None})
    assert adopt.status == 403
    assert adopt.body["error"] == {"code": "field_forbidden", "field": "reseller",
                                   "message": adopt.body["error"]["message"]}
    steal = await world.call("PUT", f"/v1/limits/tenants/{OTHER}/numbers/+4930", token,
                             json_body={"channels": 1})
    assert steal.status == 403
    assert await redis_state(world.redis) == before


async def test_moving_a_sub_tenant_away_hides_it_on_the_next_request(world: Api) -> None:
    reseller = await world.token("reseller", RESELLER)
    admin = await world.token("admin", "*")
    assert (await world.call("GET", f"/v1/limits/tenants/{SUBSUB}", reseller)).status == 200
    moved = await world.call("PUT", f"/v1/limits/tenants/{SUB}", admin,
                             json_body={"reseller": OTHER})
    assert moved.status == 200 and moved.body["reseller"] == OTHER
    for tenant in (SUB, SUBSUB):
        got = await world.call("GET", f"/v1/limits/tenants/{tenant}", reseller)
        assert got.status == 403, tenant
    other = await world.token("reseller", OTHER)
    assert (await world.call("GET", f"/v1/limits/tenants/{SUBSUB}", other)).status == 200


async def test_tenant_tokens_read_but_do_not_change_their_own_limits(world: Api) -> None:
    before = await redis_state(world.redis)
    for role in ("admin", "operator"):
        token = await world.token(role, A)
        assert (await world.call("GET", f"/v1/limits/tenants/{A}", token)).status == 200
        got = await world.call("PUT", f"/v1/limits/tenants/{A}", token,
                               json_body={"total": 999})
        assert got.status == 403 and got.body["error"]["code"] == "tenant_forbidden"
    assert await redis_state(world.redis) == before


def _token_for(role: Role) -> tuple[str, str]:
    """(token tenant, tenant to name in paths) giving `role` its widest allowed reach."""
    if role.may_be_site_wide:
        return "*", A
    if role is Role.RESELLER:
        return RESELLER, SUB
    return A, A


async def test_roles_are_enforced_per_route(world: Api) -> None:
    for route in world.routes:
        for role in Role:
            token_tenant, path_tenant = _token_for(role)
            token = await world.token(role.value, token_tenant)
            got = await call_route(world, route, token, path_tenant)
            where = f"{role} {route.method} {route.path}"
            if route.scope is Scope.PUBLIC or role in route.roles:
                allowed_403 = route.scope is Scope.SITE and not role.may_be_site_wide
                if allowed_403:
                    assert got.body["error"]["code"] == "site_token_required", where
                else:
                    assert got.status not in (401, 403), (where, got.text)
                    if got.status < 300:
                        assert got.status == route.status, where
                        validate(route.response, got.body)
            else:
                assert got.status == 403, (where, got.text)
                assert got.body["error"]["code"] == "role_forbidden", where


async def test_every_authenticated_route_wants_a_valid_token(world: Api) -> None:
    bad = "cg_0123456789abcdef_" + "0" * 64
    for route in world.routes:
        if route.scope is Scope.PUBLIC:
            continue
        missing = await call_route(world, route, None, A)
        assert missing.status == 401 and missing.body["error"]["code"] == "token_missing"
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = await call_route(world, route, bad, A)
        assert wrong.status == 401 and wrong.body["error"]["code"] == "token_invalid"


def test_routes_declare_their_scope_consistently(world: Api) -> None:
    routes: tuple[Route, ...] = world.routes
    assert {r.scope for r in routes} == set(Scope)
    for r in routes:
        if r.scope is Scope.TENANT:
            assert "{tenant}" in r.path

"""Bearer tokens: shown once, stored only hashed, revoked from the very next request."""

from __future__ import annotations

import re

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.api import InvalidToken, create_token, list_tokens, revoke_token
from tests.api.conftest import SITE, Api
from tests.support.servers import free_port


async def _everything_in_redis(client: aioredis.Redis) -> bytes:
    """Every key name and value, flattened, whatever the type."""
    parts: list[bytes] = []
    async for key in client.scan_iter(count=1000):
        parts.append(key)
        kind = (await client.type(key)).decode()
        if kind == "hash":
            for k, v in (await client.hgetall(key)).items():
                parts += [k, v]
        elif kind == "set":
            parts += list(await client.smembers(key))
        elif kind == "string":
            parts.append(await client.get(key))
        elif kind == "zset":
            parts += [m for m, _ in await client.zrange(key, 0, -1, withscores=True)]
        dumped = await client.dump(key)
        parts.append(dumped or b"")
    return b"\n".join(parts)


async def test_token_is_shown_once_and_never_stored_in_clear(api: Api) -> None:
    token = await create_token(api.redis, SITE, "acme", "supervisor", label="wallboard")
    match = re.fullmatch(r"cg_([0-9a-f]{16})_([0-9a-f]{64})", token)
    assert match is not None
    token_id, secret = match.groups()
    stored = await _everything_in_redis(api.redis)
    assert secret.encode() not in stored
    assert bytes.fromhex(secret) not in stored
    assert token.encode() not in stored
    assert token_id.encode() in stored  # the id is what listings show
    listed = await list_tokens(api.redis, SITE)
    assert [(t.token_id, t.role.value, t.tenant, t.label) for t in listed] == [
        (token_id, "supervisor", "acme", "wallboard")]
    assert secret not in repr(listed)
    me = await api.call("GET", "/v1/whoami", token)
    assert me.status == 200
    assert me.body["token"]["id"] == token_id and me.body["site_wide"] is False


async def test_revoke_refuses_the_very_next_request(api: Api) -> None:
    token = await create_token(api.redis, SITE, "*", "operator")
    assert (await api.call("GET", "/v1/whoami", token)).status == 200
    assert await revoke_token(api.redis, SITE, token)
    got = await api.call("GET", "/v1/whoami", token)
    assert got.status == 401 and got.body["error"]["code"] == "token_invalid"
    assert not await revoke_token(api.redis, SITE, token)  # already gone


async def test_revoke_through_the_api_takes_effect_at_once(api: Api) -> None:
    admin = await create_token(api.redis, SITE, "*", "admin")
    made = await api.call("POST", "/v1/tokens", admin,
                          json_body={"role": "reseller", "tenant": "resell", "label": "r1"})
    assert made.status == 201
    victim, victim_id = made.body["token"], made.body["id"]
    assert (await api.call("GET", "/v1/limits/tenants/resell", victim)).status == 200
    listed = await api.call("GET", "/v1/tokens", admin)
    assert victim_id in [t["id"] for t in listed.body["tokens"]]
    assert victim.split("_")[2] not in listed.text
    gone = await api.call("DELETE", f"/v1/tokens/{victim_id}", admin)
    assert gone.status == 200 and gone.body == {"revoked": victim_id}
    refused = await api.call("GET", "/v1/limits/tenants/resell", victim)
    assert refused.status == 401
    again = await api.call("DELETE", f"/v1/tokens/{victim_id}", admin)
    assert again.status == 404 and again.body["error"]["code"] == "token_not_found"


async def test_a_right_id_with_a_wrong_secret_is_refused(api: Api) -> None:
    token = await create_token(api.redis, SITE, "*", "admin")
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    for bad in (forged, token + "0", "cg_" + token[3:].upper(), "Basic abc", ""):
        got = await api.call("GET", "/v1/whoami", bad or None)
        assert got.status == 401, bad
    bearer_garbage = await api.client.get("/v1/whoami", headers={"Authorization": "Basic x"})
    assert bearer_garbage.status == 401
    assert (await bearer_garbage.json())["error"]["code"] == "token_invalid"


async def test_only_admins_and_operators_may_be_site_wide(api: Api) -> None:
    for role in ("supervisor", "reseller"):
        with pytest.raises(InvalidToken):
            await create_token(api.redis, SITE, "*", role)
    with pytest.raises(InvalidToken):
        await create_token(api.redis, SITE, "acme", "root")
    with pytest.raises(InvalidToken):
        await create_token(api.redis, SITE, "a tenant with spaces", "operator")
    admin = await create_token(api.redis, SITE, "*", "admin")
    got = await api.call("POST", "/v1/tokens", admin,
                         json_body={"role": "supervisor", "tenant": "*"})
    assert got.status == 422 and got.body["error"]["field"] == "tenant"
    got = await api.call("POST", "/v1/tokens", admin,
                         json_body={"role": "boss", "tenant": "acme"})
    assert got.status == 422 and got.body["error"]["field"] == "role"
    assert [t.role.value for t in await list_tokens(api.redis, SITE)] == ["admin"]


async def test_token_management_needs_a_site_wide_admin(api: Api) -> None:
    for role, tenant, code in (("admin", "acme", "site_token_required"),
                               ("operator", "*", "role_forbidden")):
        token = await create_token(api.redis, SITE, tenant, role)
        for method, path in (("GET", "/v1/tokens"), ("POST", "/v1/tokens")):
            got = await api.call(method, path, token,
                                 json_body={"role": "admin", "tenant": "*"})
            assert got.status == 403 and got.body["error"]["code"] == code, (role, path)
    assert {t.role.value for t in await list_tokens(api.redis, SITE)} == {"admin", "operator"}


async def test_redis_down_answers_503(make_api: object) -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5,
                          retry=Retry(NoBackoff(), 0))
    try:
        api: Api = await make_api(redis=dead)  # type: ignore[operator]
        got = await api.call("GET", "/v1/whoami", "cg_0123456789abcdef_" + "0" * 64)
        assert got.status == 503 and got.body["error"]["code"] == "backend_unavailable"
    finally:
        await dead.aclose()

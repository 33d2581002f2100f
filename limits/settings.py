"""Configured limits, changed at run time and read back with what is in use.

Limits live in Redis, read by the acquire script on every call, so a change applies to
the next call on every gateway. Lowering a limit below what is in use cuts no call: the
scope only refuses new ones until enough calls have ended.
"""

from __future__ import annotations

import builtins
from typing import Any, NoReturn

import structlog

from limits.errors import InvalidLimit, backend
from limits.keys import SiteKeys
from limits.model import OverflowPolicy, ScopeStatus, TenantStatus
from limits.replies import as_int, opt_float, opt_int, str_dict, text
from limits.scopes import (
    InvalidName,
    ScopeKind,
    ScopeRef,
    check_name,
    owned_scope,
    tenant_scope,
    tenant_surcharge_field,
    trunk_scope,
)
from limits.scripts import RedisClient

_COUNTERS = {
    "inbound": ScopeKind.TENANT_INBOUND,
    "outbound": ScopeKind.TENANT_OUTBOUND,
    "total": ScopeKind.TENANT_TOTAL,
}
_MAX_RESELLER_DEPTH = 8  # the acquire script walks at most this many tenants


def _known(tenant: str) -> str:
    """The config field saying a tenant was set up (checked when unknown tenants are refused)."""
    return f"tenant:{tenant}"


class LimitSettings:
    def __init__(self, redis: RedisClient, keys: SiteKeys,
                 log: structlog.typing.FilteringBoundLogger | None = None) -> None:
        self._redis = redis
        self._keys = keys
        self._log = log or structlog.get_logger(__name__)

    # -- changes -------------------------------------------------------------------

    async def set_tenant_limit(self, tenant: str, counter: str | ScopeKind, limit: int | None,
                               *, hard_max: int | None = None) -> None:
        """`counter` is inbound, outbound or total. Under the surcharge policy, calls
        between `limit` and `hard_max` are allowed at a surcharge."""
        kind = self._counter(counter)
        self._name("tenant", tenant)
        self._check_count("limit", limit)
        self._check_count("hard_max", hard_max)
        if hard_max is not None and (limit is None or hard_max < limit):
            self._reject("hard_max must be given with a limit and be >= it",
                         tenant=tenant, limit=limit, hard_max=hard_max)
        scope = tenant_scope(tenant, kind)
        async with backend("set_tenant_limit"):
            await self._put({f"limit:{scope}": limit, f"hard:{scope}": hard_max,
                             _known(tenant): 1})
        self._log.info("limit_changed", scope=scope, limit=limit, hard_max=hard_max)

    async def set_tenant_policy(self, tenant: str, policy: OverflowPolicy | str) -> None:
        self._name("tenant", tenant)
        try:
            policy = OverflowPolicy(policy)
        except ValueError:
            self._reject(f"policy must be refuse or surcharge, got {policy!r}", tenant=tenant)
        async with backend("set_tenant_policy"):
            await self._redis.hset(self._keys.config, mapping={f"policy:{tenant}": policy.value,
                                                               _known(tenant): 1})
        self._log.info("limit_changed", tenant=tenant, policy=policy.value)

    async def set_reseller(self, tenant: str, reseller: str | None) -> None:
        """Make `tenant` a sub-tenant of `reseller`: its calls also count against the
        reseller's tenant counters (and those of the reseller's own reseller)."""
        self._name("tenant", tenant)
        async with backend("set_reseller"):
            if reseller is None:
                await self._redis.hdel(self._keys.config, f"parent:{tenant}")
            else:
                self._name("reseller", reseller)
                chain = [tenant, reseller]
                up: str | None = reseller
                while up is not None:
                    raw = await self._redis.hget(self._keys.config, f"parent:{up}")
                    up = None if raw is None else text(raw)
                    if up is not None:
                        if up in chain:
                            self._reject("reseller chain would loop", chain=[*chain, up])
                        chain.append(up)
                if len(chain) > _MAX_RESELLER_DEPTH:
                    self._reject(f"reseller chains are at most {_MAX_RESELLER_DEPTH} deep",
                                 chain=chain)
                await self._redis.hset(self._keys.config, mapping={f"parent:{tenant}": reseller,
                                                                   _known(tenant): 1})
        self._log.info("limit_changed", tenant=tenant, reseller=reseller)

    async def set_trunk_limit(self, trunk: str, channels: int | None,
                              cps: float | None = None) -> None:
        """`channels` by hand or from the trunk's hardware profile; `cps` caps new calls
        per second (a bucket of at most one second of calls, at least one)."""
        self._name("trunk", trunk)
        self._check_count("channels", channels)
        if cps is not None and (not isinstance(cps, int | float) or isinstance(cps, bool)
                                or not cps > 0 or cps > 1_000_000):
            self._reject("cps must be a positive number", trunk=trunk, cps=cps)
        scope = trunk_scope(trunk)
        async with backend("set_trunk_limit"):
            await self._put({f"limit:{scope}": channels, f"cps:{scope}": cps})
            if cps is None:
                await self._redis.hdel(self._keys.bucket, f"{scope}/tokens", f"{scope}/at")
        self._log.info("limit_changed", scope=scope, limit=channels, cps=cps)

    async def set_number_limit(self, tenant: str, number: str, channels: int | None) -> None:
        await self._set_owned(ScopeKind.NUMBER, tenant, number, channels)

    async def set_device_limit(self, tenant: str, device: str, appearances: int | None) -> None:
        """`appearances` from the phone's hardware profile."""
        await self._set_owned(ScopeKind.DEVICE, tenant, device, appearances)

    async def set_pool_size(self, tenant: str, pool: str, size: int | None) -> None:
        await self._set_owned(ScopeKind.POOL, tenant, pool, size)

    # -- reading -------------------------------------------------------------------

    async def show(self, kind: ScopeKind | str, name: str, *,
                   tenant: str | None = None) -> ScopeStatus:
        ref = ScopeRef.of(kind, name, tenant)
        scope = ref.id
        async with backend("show"):
            pipe = self._redis.pipeline(transaction=False)
            pipe.hmget(self._keys.config, f"limit:{scope}", f"hard:{scope}", f"cps:{scope}")
            pipe.hget(self._keys.used, scope)
            pipe.hget(self._keys.surcharged, scope)
            (limit, hard, cps), used, sur = await pipe.execute()
        return ScopeStatus(ref.kind, ref.name, ref.tenant, opt_int(limit), as_int(used),
                           as_int(sur), opt_int(hard), opt_float(cps))

    async def show_scope(self, scope_id: str) -> ScopeStatus:
        """The same, by scope id (as listed in a decision's `held` or a log line)."""
        ref = ScopeRef.parse(scope_id)
        tenant = None if ref.kind is ScopeKind.TRUNK else ref.tenant
        return await self.show(ref.kind, ref.name, tenant=tenant)

    async def show_tenant(self, tenant: str) -> TenantStatus:
        self._name("tenant", tenant)
        async with backend("show_tenant"):
            pipe = self._redis.pipeline(transaction=False)
            pipe.hmget(self._keys.config, f"parent:{tenant}", f"policy:{tenant}")
            pipe.hget(self._keys.surcharged, tenant_surcharge_field(tenant))
            (parent, policy), sur = await pipe.execute()
        inbound, outbound, total = [await self.show(kind, tenant) for kind in _COUNTERS.values()]
        return TenantStatus(tenant, None if parent is None else text(parent),
                            OverflowPolicy(text(policy) or "refuse"), inbound, outbound, total,
                            as_int(sur))

    async def list_scopes(self, kind: ScopeKind | str, *,
                          tenant: str | None = None) -> builtins.list[ScopeStatus]:
        """Scopes of one kind that have a limit or are in use. With `tenant`, only that
        tenant's (a tenant's view); without, all of the site (the operator's view)."""
        kind = ScopeKind(kind)
        if tenant is not None:
            self._name("tenant", tenant)
            if kind is ScopeKind.TRUNK:
                raise InvalidName("trunks belong to the site, not to a tenant")
        async with backend("list"):
            pipe = self._redis.pipeline(transaction=False)
            for key in (self._keys.config, self._keys.used, self._keys.surcharged):
                pipe.hgetall(key)
            config, used, sur = (str_dict(r) for r in await pipe.execute())
        limit, hard, cps = ({k[len(p):]: v for k, v in config.items() if k.startswith(p)}
                            for p in ("limit:", "hard:", "cps:"))
        out = []
        for scope in sorted(set(limit) | set(used)):
            try:
                ref = ScopeRef.parse(scope)
            except InvalidName:
                continue
            if ref.kind is not kind or (tenant is not None and ref.tenant != tenant):
                continue
            out.append(ScopeStatus(ref.kind, ref.name, ref.tenant, opt_int(limit.get(scope)),
                                   as_int(used.get(scope)), as_int(sur.get(scope)),
                                   opt_int(hard.get(scope)), opt_float(cps.get(scope))))
        return out

    list = list_scopes

    # -- helpers ---------------------------------------------------------------------

    async def _set_owned(self, kind: ScopeKind, tenant: str, name: str,
                         limit: int | None) -> None:
        self._name("tenant", tenant)
        self._name(kind.value, name)
        self._check_count(kind.value + " limit", limit)
        scope = owned_scope(kind, tenant, name)
        async with backend(f"set_{kind.value}_limit"):
            await self._put({f"limit:{scope}": limit})
        self._log.info("limit_changed", scope=scope, limit=limit)

    async def _put(self, fields: dict[str, float | None]) -> None:
        """Set or (None) remove config fields in one transaction."""
        pipe = self._redis.pipeline(transaction=True)
        for name, value in fields.items():
            if value is None:
                pipe.hdel(self._keys.config, name)
            else:
                pipe.hset(self._keys.config, name, value)
        await pipe.execute()

    def _counter(self, counter: str | ScopeKind) -> ScopeKind:
        if isinstance(counter, ScopeKind) and counter in _COUNTERS.values():
            return counter
        if counter in _COUNTERS:
            return _COUNTERS[str(counter)]
        self._reject(f"tenant counter must be inbound, outbound or total, got {counter!r}")

    def _name(self, what: str, value: str) -> str:
        try:
            return check_name(what, value)
        except InvalidName as exc:
            self._log.warning("limit_config_rejected", error=str(exc))
            raise

    def _check_count(self, what: str, value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 0 or value > 10_000_000):
            self._reject(f"{what} must be a whole number >= 0 or None (unlimited)", value=value)

    def _reject(self, message: str, **context: Any) -> NoReturn:
        self._log.warning("limit_config_rejected", error=message, **context)
        raise InvalidLimit(message)

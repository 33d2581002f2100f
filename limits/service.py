"""Authorizing calls against exact concurrent-call counters in Redis.

Every call takes all of its scopes in one EVALSHA of acquire.lua (all or nothing) and gives
them back in one EVALSHA of release.lua, keyed by a lease id that makes release
idempotent: the AMI Hangup, the `release` hook, lease expiry and reconciliation may all
try, only the first frees (invariant 1). Leases carry a deadline, renewed while the call is
up, so the slots of a crashed gateway come back on their own through `expire_due()`.

When Redis does not answer, authorize follows the configured policy (invariant 6) and never
raises: fail_closed refuses with `backend_unavailable`, fail_open allows and journals the
grant; an emergency call is allowed and journaled under either (invariant 3).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from limits.emergency import EmergencyNumbers
from limits.errors import BackendUnavailable
from limits.journal import FailOpenJournal, JournalEntry
from limits.keys import SiteKeys
from limits.model import (
    BackendPolicy,
    CallRequest,
    Decision,
    LeaseInfo,
    ReconcileReport,
    RenewReport,
)
from limits.pipelined import ReplyLost
from limits.reasons import CAUSES, Reason, Result
from limits.reconcile import plan_reconcile
from limits.scopes import LEASE_ID_RE
from limits.scripts import LimitScripts, RedisClient
from limits.settings import LimitSettings
from limits.store import CHECK, EMERGENCY, RESTORE, Acquired, LeaseStore

Logger = structlog.typing.FilteringBoundLogger

_STATUS_REASON = {
    "ok": Reason.OK,
    "surcharge": Reason.SURCHARGE,
    "emergency": Reason.EMERGENCY,
    "restored": Reason.OK,
}


def new_lease_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One ready-to-run script invocation, for benchmarks comparing the service's
    throughput with raw EVALSHA of the very same script and arguments."""

    script: AsyncScript
    keys: tuple[str, ...]
    args: tuple[str | int, ...]
    lease_id: str

    async def run(self) -> Any:
        return await self.script(keys=self.keys, args=self.args)


class LimitsService:
    def __init__(
        self,
        redis: RedisClient,
        site: str,
        *,
        emergency: EmergencyNumbers,
        clock: Callable[[], float] = time.time,
        lease_ttl: float = 60.0,
        backend_policy: BackendPolicy | str = BackendPolicy.FAIL_CLOSED,
        journal: FailOpenJournal | None = None,
        tombstone_ttl: float = 300.0,
        reconcile_grace: float = 5.0,
        lease_ids: Callable[[], str] = new_lease_id,
        refuse_unknown_tenants: bool = False,
        log: Logger | None = None,
    ) -> None:
        """`clock` is wall-clock epoch seconds: deadlines are compared across gateways.
        `tombstone_ttl` is how long a released lease id is remembered, so reconciliation
        never re-counts a call that hung up while the live set was being read.
        `reconcile_grace` allows for clock skew between gateways.
        `refuse_unknown_tenants`: a call naming a tenant no one set up (`limit set tenant`)
        is refused with `unknown_tenant` rather than allowed unlimited: a typo in a
        dialplan must not hand out free, uncounted calls. Emergency calls still pass."""
        if lease_ttl <= 0 or tombstone_ttl <= 0 or reconcile_grace < 0:
            raise ValueError("lease_ttl and tombstone_ttl must be > 0, reconcile_grace >= 0")
        self.site = site
        self.keys = SiteKeys(site)
        self.scripts = LimitScripts.register(redis)
        self.lease_ttl = lease_ttl
        self.journal = journal if journal is not None else FailOpenJournal()
        self._log: Logger = log or structlog.get_logger(__name__)
        self.settings = LimitSettings(redis, self.keys, self._log)
        self._store = LeaseStore(redis, self.keys, self.scripts, int(lease_ttl * 1000),
                                 int(tombstone_ttl * 1000))
        self._store.refuse_unknown_tenants = refuse_unknown_tenants
        self._redis = redis
        self._emergency = emergency
        self._clock = clock
        self.reconcile_grace = reconcile_grace
        self._grace = reconcile_grace
        self._policy = BackendPolicy(backend_policy)
        self._lease_ids = lease_ids
        self._flush_lock = asyncio.Lock()
        # Wall-clock time Redis last came back after not answering: leases could not be
        # renewed while it was away, so none is expired until a TTL after that.
        self._backend_back_at = float("-inf")
        self._backend_down = False

    @property
    def refuse_unknown_tenants(self) -> bool:
        return self._store.refuse_unknown_tenants

    @refuse_unknown_tenants.setter
    def refuse_unknown_tenants(self, refuse: bool) -> None:
        if refuse != self._store.refuse_unknown_tenants:
            self._log.info("limit_unknown_tenant_policy_changed", refuse=refuse)
        self._store.refuse_unknown_tenants = refuse

    @property
    def backend_policy(self) -> BackendPolicy:
        return self._policy

    def set_backend_policy(self, policy: BackendPolicy | str) -> None:
        """Change the Redis-down policy at run time (a configuration reload)."""
        try:
            new = BackendPolicy(policy)
        except ValueError:
            self._log.warning("limit_config_rejected", redis_down_policy=str(policy),
                              error="must be fail_closed or fail_open")
            raise
        if new is not self._policy:
            self._log.info("limit_backend_policy_changed", old=self._policy.value,
                           new=new.value)
        self._policy = new

    async def aclose(self) -> None:
        """Close the pipelined connection of the hot scripts (the client is the caller's)."""
        await self.scripts.close()

    async def load_scripts(self) -> None:
        """Put the scripts in Redis' cache now (they are also reloaded on NOSCRIPT)."""
        async with self._backend("load_scripts"):
            await self.scripts.load()

    # -- the hot path: one EVALSHA each ----------------------------------------------

    async def authorize(self, req: CallRequest) -> Decision:
        emergency = self._emergency.matches(req.dest)
        lease_id = self._lease_ids()
        now = self._clock()
        try:
            got = await self._store.acquire(req, lease_id, now, EMERGENCY if emergency else CHECK)
        except RedisError as exc:
            return self._decide_without_backend(req, emergency, lease_id, now, exc)
        self._backend_answered(now)
        decision = self._decision(req, lease_id, emergency, got)
        if self.journal and not self._flush_lock.locked():
            await self.flush_journal()
        return decision

    async def release(self, lease_id: str, *, by: str) -> bool:
        """Free a lease; True if this call freed it, False if someone else did first, it
        never existed, or Redis is unreachable (then the release is journaled and
        replayed when Redis answers again; lease expiry is the backstop)."""
        if not lease_id:
            return False  # the `h` extension of a refused call: it never had a lease
        if not isinstance(lease_id, str) or not LEASE_ID_RE.match(lease_id):
            self._log.warning("release_bad_lease_id", lease=repr(lease_id)[:80], by=by)
            return False
        now = self._clock()
        try:
            if self.journal:
                await self.flush_journal(raise_errors=True)
            freed = (await self._store.release([lease_id], "release", now))[0]
        except RedisError as exc:
            self._note_backend_down(exc)
            self.journal.append(JournalEntry("release", lease_id, now, by))
            self._log.warning("release_deferred", lease=lease_id, by=by, error=str(exc))
            return False
        self._backend_answered(now)
        if freed is None:
            self._log.debug("release_noop", lease=lease_id, by=by)
            return False
        self._log.debug("lease_released", lease=lease_id, by=by, tenant=freed.tenant,
                        call_id=freed.call_id)
        return True

    # -- leases ----------------------------------------------------------------------

    async def renew(self, lease_ids: Iterable[str]) -> RenewReport:
        """Extend the leases of calls still up. A lease that exists is extended (even if
        its deadline passed and no sweeper freed it yet); one already freed is reported
        gone and stays freed: the caller decides (usually: reconcile that call)."""
        ids = list(dict.fromkeys(lease_ids))
        bad = [i for i in ids if not isinstance(i, str) or not LEASE_ID_RE.match(i)]
        if bad:
            self._log.warning("renew_bad_lease_ids", count=len(bad), sample=repr(bad[:3]))
        await self.flush_journal()
        # grants still journaled are written back with a fresh deadline
        local = {e.lease_id for e in self.journal.entries if e.op == "grant"}
        todo = [i for i in ids if i not in local and i not in bad]
        now = self._clock()
        async with self._backend("renew"):
            extended = await self._store.renew(todo, now)
        self._backend_answered(now)
        renewed = [i for i in ids if i in local]
        renewed += [i for i, ok in zip(todo, extended, strict=True) if ok]
        gone = bad + [i for i, ok in zip(todo, extended, strict=True) if not ok]
        return RenewReport(tuple(renewed), tuple(gone))

    async def expire_due(self, *, batch: int = 500) -> list[LeaseInfo]:
        """Free every lease whose deadline has passed (a crashed gateway's calls). Does
        nothing for one TTL after Redis came back from an outage, since no lease could be
        renewed meanwhile."""
        now = self._clock()
        if self._backend_down:  # find out whether it is back before expiring anything
            async with self._backend("expire_due"):
                await self._redis.ping()
            self._backend_answered(now)
        if now < self._backend_back_at + self.lease_ttl:
            self._log.info("lease_expiry_paused", until=self._backend_back_at + self.lease_ttl)
            return []
        await self.flush_journal()
        freed: list[LeaseInfo] = []
        async with self._backend("expire_due"):
            while ids := await self._store.due(now, batch):
                freed += [x for x in await self._store.release(ids, "expire", now) if x]
                if len(ids) < batch:
                    break
        self._backend_answered(now)
        for lease in freed:
            self._log.warning("lease_expired", lease=lease.lease_id, tenant=lease.tenant,
                              call_id=lease.call_id, origin=lease.origin, scopes=lease.scopes)
        return freed

    async def lease(self, lease_id: str, *, tenant: str | None = None) -> LeaseInfo | None:
        """One lease; with `tenant`, None unless it is that tenant's."""
        if not LEASE_ID_RE.match(lease_id):
            return None
        async with self._backend("lease"):
            info = await self._store.get(lease_id)
        if info is None or (tenant is not None and info.tenant != tenant):
            return None
        return info

    async def leases(self, *, tenant: str | None = None) -> list[LeaseInfo]:
        """Leases of the site; with `tenant`, only that tenant's own calls."""
        async with self._backend("leases"):
            found = await self._store.all()
        return [lease for lease in found.values() if tenant is None or lease.tenant == tenant]

    async def in_use(self) -> dict[str, int]:
        """Every non-zero in-use counter of the site, by scope id (the operator's view)."""
        async with self._backend("in_use"):
            return await self._store.in_use()

    # -- recovery --------------------------------------------------------------------

    async def reconcile(
        self,
        live: Mapping[str, CallRequest | None] | Collection[str],
        *,
        unleased: Iterable[CallRequest] = (),
        origins: Collection[str] | None = None,
        as_of: float | None = None,
    ) -> ReconcileReport:
        """Bring Redis in line with the calls that are up (see limits/reconcile.py).

        `live`: the `CALLGATE_LEASE` values of live channels, as a set, or mapped to the
        call's request when the gateway can rebuild it (only then can a lost lease be
        counted again). `unleased`: live calls that hold no lease (counted under new lease
        ids, returned in `counted`). `origins`: Asterisk servers this gateway sees;
        leases of other servers are left alone (None: the gateway sees all). `as_of`:
        when the live set was read (default now)."""
        now = self._clock()
        live_map = dict(live) if isinstance(live, Mapping) else dict.fromkeys(live)
        bad = [i for i in live_map if not isinstance(i, str) or not LEASE_ID_RE.match(i)]
        for lease_id in bad:
            del live_map[lease_id]
        if bad:
            self._log.warning("reconcile_bad_lease_ids", count=len(bad), sample=repr(bad[:3]))
        await self.flush_journal()
        if self.journal:
            raise BackendUnavailable("reconcile: the fail-open journal could not be written")
        async with self._backend("reconcile"):
            leases = await self._store.all()
            plan = plan_reconcile(leases, live_map, origins=origins,
                                  created_before=(now if as_of is None else as_of) - self._grace)
            renewed = sum(await self._store.renew(plan.present, now))
            freed = [x for x in await self._store.release(plan.stale, "release", now) if x]
            restored: list[str] = []
            released: list[str] = []
            unrecoverable = [lease_id for lease_id, req in plan.missing if req is None]
            for lease_id, req in plan.missing:
                if req is not None:
                    got = await self._store.acquire(req, lease_id, now, RESTORE, "recounted")
                    if got.code == 1:
                        restored.append(lease_id)
                    elif got.code == 2:  # hung up while the live set was being read
                        released.append(lease_id)
            counted: list[tuple[str, str]] = []
            for req in unleased:
                lease_id = self._lease_ids()
                await self._store.acquire(req, lease_id, now, RESTORE, "recounted")
                counted.append((req.call_id, lease_id))
            fixes = await self._store.recount()
        self._backend_answered(now)
        report = ReconcileReport(
            freed=tuple(freed), restored=tuple(restored), counted=tuple(counted),
            unrecoverable=tuple(unrecoverable), already_released=tuple(released),
            fixed_counters=tuple(fixes), renewed=renewed, skipped_young=plan.skipped_young,
        )
        if report.fixed or report.unrecoverable:
            self._log.warning("reconcile_fixed", **report.summary())
        else:
            self._log.info("reconcile_clean", leases=len(leases), live=len(live_map))
        return report

    async def flush_journal(self, *, raise_errors: bool = False) -> int:
        """Write what was granted or released while Redis was away; returns how many
        journal entries were written. Entries stay journaled until written."""
        if not self.journal:
            return 0
        async with self._flush_lock:
            written = 0
            try:
                for entry in self.journal.entries:
                    await self._write_back(entry)
                    written += 1
            except RedisError as exc:
                self._note_backend_down(exc)
                self._log.warning("failopen_writeback_failed", written=written,
                                  pending=len(self.journal) - written, error=str(exc))
                if raise_errors:
                    raise
            finally:
                if written:
                    self.journal.drop_written(written)
                    self._log.info("failopen_written_back", entries=written)
        return written

    # -- for benchmarks --------------------------------------------------------------

    def raw_acquire_call(self, req: CallRequest) -> ScriptCall:
        """The exact EVALSHA `authorize` would run for `req`, under a fresh lease id."""
        lease_id = self._lease_ids()
        mode = EMERGENCY if self._emergency.matches(req.dest) else CHECK
        keys, args = self._store.acquire_call(req, lease_id, self._clock(), mode)
        return ScriptCall(self.scripts.acquire, keys, args, lease_id)

    def raw_release_call(self, lease_id: str) -> ScriptCall:
        keys, args = self._store.release_call([lease_id], "release", self._clock())
        return ScriptCall(self.scripts.release, keys, args, lease_id)

    # -- internals -------------------------------------------------------------------

    def _decision(self, req: CallRequest, lease_id: str, emergency: bool,
                  got: Acquired) -> Decision:
        # The one log line of the decision (the gateway's routes add none): everything an
        # operator needs to tell why, on the line itself.
        call: dict[str, Any] = {"tenant": req.tenant, "call_id": req.call_id,
                                "direction": req.direction.value}
        call.update((k, v) for k, v in (("dest", req.dest), ("trunk", req.trunk),
                                        ("number", req.number), ("device", req.device)) if v)
        if not got.held:
            reason = Reason(got.status)
            scope = got.scopes[0]
            self._log.info("limit_denied", reason=reason.value, cause=CAUSES[reason],
                           scope=scope, limit=got.limit, in_use=got.in_use, **call)
            return Decision.deny(reason, scope)
        reason = _STATUS_REASON.get(got.status, Reason.OK)
        decision = Decision(Result.ALLOW, reason, CAUSES[reason], lease_id,
                            surcharge=reason is Reason.SURCHARGE,
                            emergency=reason is Reason.EMERGENCY, held=got.scopes)
        ctx: dict[str, Any] = {"lease": lease_id, **call}
        if emergency:
            self._log.warning("limit_emergency", **ctx)
        elif decision.surcharge:
            self._log.info("limit_surcharge", surcharged=list(got.surcharged), **ctx)
        else:
            self._log.info("limit_allowed", **ctx)
        return decision

    def _decide_without_backend(self, req: CallRequest, emergency: bool, lease_id: str,
                                now: float, exc: RedisError) -> Decision:
        self._note_backend_down(exc)
        ctx = {"tenant": req.tenant, "call_id": req.call_id, "error": str(exc)}
        if emergency or self._policy is BackendPolicy.FAIL_OPEN:
            reason = Reason.EMERGENCY if emergency else Reason.OK
            self.journal.append(JournalEntry("grant", lease_id, now, reason.value, req))
            event = "limit_emergency" if emergency else "limit_fail_open"
            self._log.warning(event, lease=lease_id, journaled=True, dest=req.dest, **ctx)
            return Decision(Result.ALLOW, reason, CAUSES[reason], lease_id,
                            emergency=emergency, journaled=True)
        if isinstance(exc, RedisTimeoutError | ReplyLost):
            # The acquire may still run once Redis wakes up: free it then, rather than
            # hold a slot for a refused call until the lease expires.
            self.journal.append(JournalEntry("release", lease_id, now, "unanswered_acquire"))
        self._log.error("limit_denied", reason=Reason.BACKEND_UNAVAILABLE.value,
                        scope="redis", **ctx)
        return Decision.deny(Reason.BACKEND_UNAVAILABLE, "redis")

    async def _write_back(self, entry: JournalEntry) -> None:
        now = self._clock()
        if entry.op == "release":
            await self._store.release([entry.lease_id], "release", now)
        elif entry.request is None:
            self._log.error("failopen_entry_without_request", lease=entry.lease_id)
        else:
            emergency = entry.reason == Reason.EMERGENCY.value
            flags = "fail_open emergency" if emergency else "fail_open"
            await self._store.acquire(entry.request, entry.lease_id, now, RESTORE, flags)
            await self._store.record_failopen(entry, now)

    @asynccontextmanager
    async def _backend(self, what: str) -> AsyncIterator[None]:
        try:
            yield
        except RedisError as exc:
            self._note_backend_down(exc)
            raise BackendUnavailable(f"{what}: Redis unavailable: {exc}") from exc

    def _note_backend_down(self, exc: RedisError) -> None:
        if not self._backend_down:
            self._backend_down = True
            self._log.error("limits_backend_unavailable", error=str(exc),
                            policy=self._policy.value)

    def _backend_answered(self, now: float) -> None:
        if self._backend_down:
            self._backend_down = False
            self._backend_back_at = now
            self._log.warning("limits_backend_back", expiry_paused_for=self.lease_ttl)

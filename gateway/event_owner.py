"""Which gateway owns each Asterisk's once-only duties.

Several gateways may share one Redis and one Asterisk farm. Any of them answers any AGI
request, and every one of them follows every Asterisk's AMI events (releasing a slot on
Hangup is idempotent, so that may run everywhere). Some duties must run once per
Asterisk: reconciling leases against its live channels, placing campaign calls on it,
scheduling prepaid debits of its calls. For each Asterisk one gateway at a time is its
*event owner* and does them.

Ownership is a lease in Redis (event_owner_claim.lua): taken with SET NX PX, renewed every
`ttl / 3`, and taken over by another gateway within about `ttl + ttl / 3` once the owner
stops renewing (killed, frozen, cut off from Redis). A clean shutdown gives it up
(event_owner_release.lua) so the next gateway takes over at its next claim. Each new
holder gets the next *epoch* of that Asterisk, a fencing token: work stamped with an
older epoch came from a gateway that has lost ownership.

A gateway that cannot reach Redis stops believing it owns an Asterisk once the time to
live of its last confirmed claim (counted from when that claim was *sent*) has run out,
before any other gateway can have taken the lease over.

A gateway restarted after a crash need not wait for its dead predecessor's lease to run
out: `gateway_identity(state_dir)` records each run's id in the state directory and
names the previous run when its process is gone, and a lease held by that
`predecessor` is taken over at once (with a new epoch). So a lone gateway is the owner
again as soon as its AMI session is up, as it was before it died. (Two running gateways
must not share one state directory; a predecessor still running is never named.)

Users of ownership ask `is_owner(asterisk)` before each once-only action, and may react
to changes with `on_gain(callback)` / `on_loss(callback)` (called as
`callback(asterisk, epoch)`; a callback may be a coroutine function, it then runs as a
task). Logs: `event_owner_acquired`, `event_owner_lost`.

Work that Redis itself fences with the epoch (prepaid debits: debit.lua refuses an epoch
older than the newest it has seen) asks `fencing_epoch(asterisk)` instead: besides while
owner, it still gives the last epoch after ownership lapsed only because Redis could not
be reached and no other holder has been seen since. A lone gateway cut off from Redis so
keeps failing closed (a call whose paid time runs out is cut off) instead of letting its
calls run unpaid, and once another gateway has taken over, Redis refuses the old epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

from gateway.http_api import Check
from gateway.redis_connect import RedisClient
from limits import SiteKeys

log = structlog.get_logger(__name__)

DEFAULT_TTL = 3.0
# Believe in a claim for this share of the ttl only (a margin for scheduling delays).
_SAFETY = 0.9

OwnerCallback = Callable[[str, int], Any]


def _lua(name: str) -> str:
    return (Path(__file__).with_name(name)).read_text(encoding="utf-8")


def new_gateway_id() -> str:
    """Unique per process: host, pid and a random part (a restarted gateway is a new one)."""
    host = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname())
    return f"{host[:40] or 'gw'}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class OwnerState:
    """What this gateway knows about one Asterisk's ownership."""

    asterisk: str
    owner: bool
    epoch: int  # this gateway's epoch when owner, else the holder's last seen (0: none)
    holder: str  # gateway id of the holder as last seen, "" when unknown or free


@dataclass
class _Held:
    epoch: int
    valid_until: float  # monotonic; ownership is assumed lost after this


class EventOwnership:
    def __init__(
        self,
        redis: RedisClient,
        site: str,
        asterisks: Iterable[str],
        *,
        gateway_id: str | None = None,
        predecessor: str | None = None,
        ttl: float = DEFAULT_TTL,
        registry: Any = None,
        eligible: Callable[[str], bool] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"event owner ttl must be positive, got {ttl!r}")
        self.gateway_id = gateway_id or new_gateway_id()
        self.predecessor = predecessor or ""
        self.ttl = float(ttl)
        self.asterisks = tuple(dict.fromkeys(asterisks))
        self._redis = redis
        self._keys = SiteKeys(site)
        self._claim = redis.register_script(_lua("event_owner_claim.lua"))
        self._release = redis.register_script(_lua("event_owner_release.lua"))
        self._monotonic = monotonic
        self._eligible = eligible or (lambda _name: True)
        self._ineligible_since: dict[str, float] = {}
        self._held: dict[str, _Held] = {}
        self._unreachable_epoch: dict[str, int] = {}  # lost only to Redis being unreachable
        self._seen: dict[str, tuple[int, str]] = {}
        self._on_gain: list[OwnerCallback] = []
        self._on_loss: list[OwnerCallback] = []
        self._task: asyncio.Task[None] | None = None
        self._poked = asyncio.Event()
        self._side: set[asyncio.Task[Any]] = set()
        self._gauge: Gauge | None = None
        self._epoch_gauge: Gauge | None = None
        self._changes: Counter | None = None
        if registry is not None:
            self._gauge = Gauge("callgate_event_owner",
                                "1 while this gateway is the event owner of the Asterisk",
                                ["asterisk"], registry=registry)
            self._epoch_gauge = Gauge("callgate_event_owner_epoch",
                                      "Epoch (fencing token) of this gateway's ownership",
                                      ["asterisk"], registry=registry)
            self._changes = Counter("callgate_event_owner_changes",
                                    "Event ownership gained or lost by this gateway",
                                    ["asterisk", "change"], registry=registry)
            for name in self.asterisks:
                self._gauge.labels(asterisk=name).set(0)

    # -- keys ------------------------------------------------------------------------------

    def lease_key(self, asterisk: str) -> str:
        return f"{self._keys.prefix}event_owner:{asterisk}"

    def epoch_key(self, asterisk: str) -> str:
        return f"{self._keys.prefix}event_owner_epoch:{asterisk}"

    # -- asking ----------------------------------------------------------------------------

    def is_owner(self, asterisk: str) -> bool:
        held = self._held.get(asterisk)
        return held is not None and self._monotonic() < held.valid_until

    def owned(self) -> frozenset[str]:
        return frozenset(a for a in self.asterisks if self.is_owner(a))

    def owns_any(self) -> bool:
        return bool(self.owned())

    def owns_all(self) -> bool:
        return all(self.is_owner(a) for a in self.asterisks)

    def epoch(self, asterisk: str) -> int | None:
        """This gateway's fencing token for `asterisk`, None unless it owns it."""
        held = self._held.get(asterisk)
        return held.epoch if held is not None and self.is_owner(asterisk) else None

    def fencing_epoch(self, asterisk: str) -> int | None:
        """The epoch to stamp Redis-fenced work with: this gateway's while owner (or while
        its claim cannot be confirmed), and after ownership was lost to Redis being
        unreachable until another holder is seen; None otherwise."""
        held = self._held.get(asterisk)
        if held is not None:  # owner, or lapsed with no answer from Redis yet
            return held.epoch
        return self._unreachable_epoch.get(asterisk)

    def state(self, asterisk: str) -> OwnerState:
        if self.is_owner(asterisk):
            return OwnerState(asterisk, True, self._held[asterisk].epoch, self.gateway_id)
        epoch, holder = self._seen.get(asterisk, (0, ""))
        return OwnerState(asterisk, False, epoch, holder)

    def on_gain(self, callback: OwnerCallback) -> Callable[[], None]:
        """Call `callback(asterisk, epoch)` each time this gateway becomes owner (also
        for ownership already held when subscribing)."""
        self._on_gain.append(callback)
        for name in self.owned():
            self._fire(callback, name, self._held[name].epoch)
        return lambda: self._on_gain.remove(callback)

    def on_loss(self, callback: OwnerCallback) -> Callable[[], None]:
        """Call `callback(asterisk, epoch)` each time this gateway stops being owner."""
        self._on_loss.append(callback)
        return lambda: self._on_loss.remove(callback)

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None and self.asterisks:
            self._task = asyncio.create_task(self._run(), name="event-owner")

    async def close(self) -> None:
        """Stop claiming and give up what is held (a clean shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for name in list(self._held):
            await self._give_up(name, "shutdown")
        for task in list(self._side):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 2.0)

    def poke(self) -> None:
        """Claim now rather than at the next round (e.g. an AMI session just logged in)."""
        self._poked.set()

    async def _run(self) -> None:
        interval = self.ttl / 3
        while True:
            self._poked.clear()
            started = self._monotonic()
            await self.step()
            wait = max(0.0, interval - (self._monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), wait)

    async def step(self) -> None:
        """One claim round over every Asterisk (the loop runs this every ttl/3)."""
        ttl_ms = max(1, int(self.ttl * 1000))
        for name in self.asterisks:
            sent = self._monotonic()
            if not self._still_eligible(name, sent):
                await self._give_up(name, "not_eligible")
                continue
            try:
                reply = await asyncio.wait_for(
                    self._claim(keys=[self.lease_key(name), self.epoch_key(name)],
                                args=[self.gateway_id, ttl_ms, self.predecessor]),
                    timeout=self.ttl / 3)
            except (RedisError, OSError, TimeoutError) as exc:
                if name in self._held and not self.is_owner(name):
                    self._lose(name, "redis_unreachable")
                log.warning("event_owner_claim_failed", asterisk=name, error=str(exc)
                            or type(exc).__name__, owner=self.is_owner(name))
                continue
            except Exception:
                log.exception("event_owner_claim_failed", asterisk=name)
                continue
            got, epoch = int(reply[0]), int(reply[1])
            if got == 1:
                held = self._held.get(name)
                if held is not None and held.epoch != epoch:
                    self._lose(name, "epoch_changed")
                    held = None
                if held is None:
                    self._gain(name, epoch, sent + self.ttl * _SAFETY)
                else:
                    held.valid_until = sent + self.ttl * _SAFETY
            else:
                holder = _text(reply[2]) if len(reply) > 2 else ""
                self._seen[name] = (epoch, holder)
                self._unreachable_epoch.pop(name, None)
                if name in self._held:
                    self._lose(name, f"taken_over_by:{holder}")

    def _still_eligible(self, name: str, now: float) -> bool:
        """False while this gateway cannot do the duties (its AMI session to that
        Asterisk is down): it claims nothing then, and gives up what it holds once that
        has lasted a whole ttl (a short reconnect keeps ownership where it is)."""
        if self._eligible(name):
            self._ineligible_since.pop(name, None)
            return True
        since = self._ineligible_since.setdefault(name, now)
        return name in self._held and now - since < self.ttl

    async def _give_up(self, name: str, reason: str) -> None:
        held = self._held.get(name)
        if held is None:
            return
        try:
            await asyncio.wait_for(
                self._release(keys=[self.lease_key(name)],
                              args=[f"{self.gateway_id} {held.epoch}"]),
                timeout=max(self.ttl / 3, 0.5))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("event_owner_release_failed", asterisk=name, error=str(exc))
        self._lose(name, reason)

    # -- changes ---------------------------------------------------------------------------

    def _gain(self, name: str, epoch: int, valid_until: float) -> None:
        self._held[name] = _Held(epoch, valid_until)
        self._unreachable_epoch.pop(name, None)
        self._seen[name] = (epoch, self.gateway_id)
        log.info("event_owner_acquired", asterisk=name, epoch=epoch, gateway=self.gateway_id)
        if self._gauge is not None and self._epoch_gauge is not None \
                and self._changes is not None:
            self._gauge.labels(asterisk=name).set(1)
            self._epoch_gauge.labels(asterisk=name).set(epoch)
            self._changes.labels(asterisk=name, change="gained").inc()
        for callback in list(self._on_gain):
            self._fire(callback, name, epoch)

    def _lose(self, name: str, reason: str) -> None:
        held = self._held.pop(name, None)
        if held is None:
            return
        if reason == "redis_unreachable":
            self._unreachable_epoch[name] = held.epoch
        else:
            self._unreachable_epoch.pop(name, None)
        log.warning("event_owner_lost", asterisk=name, epoch=held.epoch, reason=reason,
                    gateway=self.gateway_id)
        if self._gauge is not None and self._changes is not None:
            self._gauge.labels(asterisk=name).set(0)
            self._changes.labels(asterisk=name, change="lost").inc()
        for callback in list(self._on_loss):
            self._fire(callback, name, held.epoch)

    def _fire(self, callback: OwnerCallback, name: str, epoch: int) -> None:
        try:
            result = callback(name, epoch)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._side.add(task)
                task.add_done_callback(self._side.discard)
        except Exception:
            log.exception("event_owner_callback_failed", asterisk=name)


ID_FILE = "event_owner.id"


def gateway_identity(state_dir: str | Path) -> tuple[str, str | None]:
    """A new id for this run, and the previous run's id when that process (same host) is
    gone: its leases may be taken over at once. Records this run's id for the next."""
    me = new_gateway_id()
    path = Path(state_dir) / ID_FILE
    previous: str | None = None
    try:
        old = path.read_text(encoding="utf-8").strip()
    except OSError:
        old = ""
    if old and _dead_here(old, me):
        previous = old
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(me + "\n", encoding="utf-8")
    except OSError as exc:
        log.warning("event_owner_id_not_recorded", path=str(path), error=str(exc))
    return me, previous


def _dead_here(old: str, me: str) -> bool:
    """`old` ('host-pid-random') ran on this host as a process that no longer exists."""
    host, _, rest = old.rpartition("-")[0].rpartition("-")
    my_host = me.rpartition("-")[0].rpartition("-")[0]
    if host != my_host or not rest.isdigit() or int(rest) in (os.getpid(), 0):
        return False
    try:
        os.kill(int(rest), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists (another user's) or cannot tell: not known dead
        return False
    return False


def readiness_checks(owners: EventOwnership) -> list[Check]:
    """One readiness line per Asterisk naming its event owner; never failing (a gateway
    that does not own an Asterisk still serves its AGI requests)."""
    checks = []
    for name in owners.asterisks:
        st = owners.state(name)
        if st.owner:
            detail = f"this gateway ({owners.gateway_id}), epoch {st.epoch}"
        elif st.holder:
            detail = f"gateway {st.holder}, epoch {st.epoch}"
        else:
            detail = "no owner seen yet"
        checks.append(Check(f"event_owner:{name}", True, detail))
    return checks


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["DEFAULT_TTL", "EventOwnership", "OwnerState", "gateway_identity", "new_gateway_id",
           "readiness_checks"]

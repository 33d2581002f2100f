"""Runs the site's dialer campaigns inside the daemon.

One `CampaignRunner` per campaign found in Redis (every tenant's, looked for again every
few seconds), each ticking on its own task with the dialer's clock. The runner re-reads
its campaign at every tick, so a supervisor change (`SupervisorControls`, the CLI) is
in force from the first tick that starts after it. Several gateways may run the same
campaigns: only the holder of a campaign's Redis lease places calls and publishes its
figures; the others follow the queue events and take over if it goes away.

AMI: each Asterisk's events and channel-table notices go through a `LinkFeed` into one
ordered queue of notices, applied by one worker (see calls.py). After every AMI login
the agent queues of the running campaigns are read again with QueueStatus, so agent
state is right from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from prometheus_client import Counter, Gauge

from ami import AmiError, Message
from dialer.campaign import CampaignError
from dialer.campaign_store import CampaignNotFound, CampaignStore
from dialer.clock import Clock, SystemClock
from dialer.keys import CampaignKeys
from dialer.redis_types import RedisClient, text
from dialer.runner import CampaignRunner
from dialer.stats import CampaignStats
from gateway.call_control import AsteriskView
from gateway.campaigns.calls import (
    Answered,
    CallBook,
    Ended,
    Failed,
    Notice,
    QueueActivity,
    QueueSync,
    Release,
)
from gateway.campaigns.feed import LinkFeed
from gateway.campaigns.live_stats import (
    mqtt_kind,
    read_stats,
    stats_from_payload,
    stats_payload,
    write_stats,
)
from gateway.campaigns.placer import AmiApology, AmiCallPlacer, DeviceLookup
from gateway.campaigns.settings import DialerSettings
from gateway.event_owner import EventOwnership
from gateway.metrics import Metrics
from limits import LimitsService

log = structlog.get_logger(__name__)

TICK_HISTORY = 2000


class EventSink(Protocol):
    def publish(self, kind: str, payload: dict[str, Any], tenant: str | None = None) -> None: ...


@dataclass(frozen=True)
class TickRecord:
    """What one pacing tick saw and did (for `stats` and tests)."""

    number: int  # 1 = the runner's first tick
    at: float  # dialer clock, when the tick started
    placed: int  # calls the pacer asked for
    limited_by: str
    mode: str
    paused: bool
    max_ratio: float


@dataclass
class CampaignHandle:
    tenant: str
    campaign_id: str
    queue: str
    runner: CampaignRunner
    task: asyncio.Task[None] | None = None
    ticks_started: int = 0
    ticks_done: int = 0
    history: deque[TickRecord] = field(default_factory=lambda: deque(maxlen=TICK_HISTORY))

    def stats(self) -> CampaignStats:
        return self.runner.stats()


class CampaignService:
    def __init__(
        self,
        site: str,
        redis: RedisClient,
        limits: LimitsService,
        asterisks: Mapping[str, AsteriskView],
        metrics: Metrics,
        mqtt: EventSink | None = None,
        *,
        settings: DialerSettings | None = None,
        clock: Clock | None = None,
        owner: str | None = None,
        devices: DeviceLookup | None = None,
    ) -> None:
        self.site = site
        self.settings = settings or DialerSettings()
        self._redis = redis
        self._limits = limits
        self._asterisks = dict(asterisks)
        self._mqtt = mqtt
        self._clock: Clock = clock or SystemClock()
        self.owner = owner or f"{site}-{uuid.uuid4().hex[:12]}"
        self.store = CampaignStore(redis)
        self.book = CallBook()
        # devices: the desk-phone registry, for a preview agent's auto-answer header.
        self.placer = AmiCallPlacer(limits, self._asterisks, self.book, self.settings,
                                    self._clock, devices=devices)
        self.apology = AmiApology(self._asterisks, self.book, self.settings)
        self._handles: dict[tuple[str, str], CampaignHandle] = {}
        self._refused: dict[tuple[str, str], str] = {}
        self._feeds = [LinkFeed(name, link.client, link.channels, self.book)
                       for name, link in self._asterisks.items()]
        self._unsubscribe: list[Callable[[], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._closed = False
        self._m_campaigns = Gauge("callgate_dialer_campaigns", "Campaigns this gateway runs",
                                  registry=metrics.registry)
        self._m_calls = Gauge("callgate_dialer_calls", "Dialer calls in flight on this gateway",
                              registry=metrics.registry)
        self._m_placements = Counter(
            "callgate_dialer_placements", "Dialer placements: placed, or the refusal reason",
            ["result"], registry=metrics.registry)
        self._counted: dict[str, int] = {}
        # Several gateways: only an event owner paces (gateway/event_owner.py); the
        # others stop renewing the campaign leases, so an owner's runners take them.
        self.event_owner: EventOwnership | None = None

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe to every Asterisk and start pacing; call before the AMI clients start
        so the first login's QueueStatus is not missed."""
        for feed in self._feeds:
            feed.attach()
        for link in self._asterisks.values():
            self._unsubscribe.append(link.client.on_resync(self._on_login))
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(self._work(), name="dialer-notices"),
            asyncio.create_task(self._supervise(), name="dialer-campaigns"),
            asyncio.create_task(self._publish_stats(), name="dialer-stats"),
        ]
        log.info("dialer_started", owner=self.owner, asterisks=sorted(self._asterisks))

    async def close(self) -> None:
        """Stop placing calls; calls already up carry on in Asterisk (CallControl and
        reconciliation keep their slots right; the next gateway recovers the leads).
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        ticking = [h.task for h in self._handles.values() if h.task is not None]
        if ticking:
            await asyncio.wait(ticking, timeout=max(5.0, 3 * self.settings.tick_s))
        for feed in self._feeds:
            feed.detach()
        for off in self._unsubscribe:
            off()
        self._unsubscribe.clear()
        with contextlib.suppress(TimeoutError):  # apply what was already reported
            async with asyncio.timeout(2.0):
                await self.book.notices.join()
        for task in [*self._tasks, *self._side_tasks,
                     *(h.task for h in self._handles.values() if h.task is not None)]:
            task.cancel()
        for task in [*self._tasks, *self._side_tasks]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        log.info("dialer_stopped", owner=self.owner, calls_in_flight=len(self.book))

    # -- reading ---------------------------------------------------------------------------

    @property
    def handles(self) -> list[CampaignHandle]:
        return list(self._handles.values())

    def handle(self, tenant: str, campaign_id: str) -> CampaignHandle | None:
        return self._handles.get((tenant, campaign_id))

    def stats(self) -> list[CampaignStats]:
        """Figures of the campaigns this gateway runs (paced here or followed)."""
        return [h.stats() for h in self._handles.values()]

    async def site_figures(self) -> list[CampaignStats]:
        """Every campaign of the site as its pacing gateway last wrote it (any gateway can
        answer; campaigns nobody paces right now are left out). For the wallboard."""
        out = []
        for tenant, cid in await self.store.all_ids():
            body = await read_stats(self._redis, tenant, cid)
            figures = stats_from_payload(body) if body is not None else None
            if figures is not None:
                out.append(figures)
        return out

    # -- campaigns -----------------------------------------------------------------------

    async def refresh(self) -> list[CampaignHandle]:
        """Start runners for campaigns not running yet; returns the new ones."""
        for key, h in list(self._handles.items()):
            if h.task is not None and h.task.done():
                del self._handles[key]
        started: list[CampaignHandle] = []
        for tenant, cid in await self.store.all_ids():
            if (tenant, cid) in self._handles:
                continue
            runner = CampaignRunner(self._redis, tenant, cid, placer=self.placer,
                                    apology=self.apology, clock=self._clock, owner=self.owner,
                                    tick_s=self.settings.tick_s)
            try:
                await runner.start()
            except (CampaignNotFound, CampaignError) as exc:
                if self._refused.get((tenant, cid)) != str(exc):
                    log.error("campaign_not_runnable", tenant=tenant, campaign=cid,
                              error=str(exc))
                self._refused[(tenant, cid)] = str(exc)
                continue
            self._refused.pop((tenant, cid), None)
            h = CampaignHandle(tenant, cid, runner.campaign.agent_queue, runner)
            h.task = asyncio.create_task(self._tick_loop(h), name=f"dialer-{tenant}-{cid}")
            self._handles[(tenant, cid)] = h
            started.append(h)
        if started:
            self._spawn(self._sync_queues({h.queue for h in started if h.queue}))
        self._m_campaigns.set(len(self._handles))
        return started

    async def _supervise(self) -> None:
        while not self._stop.is_set():
            try:
                await self.refresh()
            except Exception as exc:  # Redis away: try again next round
                log.error("dialer_refresh_failed", error=repr(exc))
            self.book.sweep(self._clock.now())
            self._m_calls.set(len(self.book))
            await self._pause(self.settings.rescan_s)

    async def _tick_loop(self, h: CampaignHandle) -> None:
        bound = log.bind(tenant=h.tenant, campaign=h.campaign_id)
        while not self._stop.is_set():
            if self.event_owner is not None and self.event_owner.asterisks \
                    and not self.event_owner.owns_any():
                await self._pause(self.settings.tick_s)
                continue
            h.ticks_started += 1
            number, at = h.ticks_started, self._clock.now()
            try:
                plan = await h.runner.tick()
            except CampaignNotFound:
                bound.warning("campaign_runner_stopped", reason="campaign deleted")
                return
            except Exception as exc:  # Redis down, a placer bug: keep pacing
                bound.error("dialer_tick_failed", error=repr(exc))
            else:
                c = h.runner.campaign
                h.history.append(TickRecord(number, at, plan.place, plan.decision.limited_by,
                                            c.mode.value, c.paused, c.max_ratio))
            h.ticks_done += 1
            self._count_placements()
            await self._pause(self.settings.tick_s)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _count_placements(self) -> None:
        for result, n in self.placer.results.items():
            seen = self._counted.get(result, 0)
            if n > seen:
                self._m_placements.labels(result=result).inc(n - seen)
                self._counted[result] = n

    # -- AMI -------------------------------------------------------------------------------

    def _on_login(self, _channels: list[Message]) -> None:
        queues = {h.queue for h in self._handles.values() if h.queue}
        if queues:
            self._spawn(self._sync_queues(queues))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _sync_queues(self, queues: set[str]) -> None:
        for name, link in sorted(self._asterisks.items()):
            if not link.client.logged_in:
                continue
            for queue in sorted(queues):
                try:
                    result = await link.client.action("QueueStatus", [("Queue", queue)])
                except AmiError as exc:
                    log.warning("dialer_queue_sync_failed", asterisk=name, queue=queue,
                                error=str(exc))
                    continue
                items = tuple(e for e in result.events if e.name == "QueueMember")
                log.info("dialer_queue_synced", asterisk=name, queue=queue, members=len(items))
                self.book.notices.put_nowait(QueueSync(queue, items))

    async def _work(self) -> None:
        while True:
            notice = await self.book.notices.get()
            try:
                await self._apply(notice)
            except Exception as exc:  # one bad notice must not stop the others
                log.error("dialer_notice_failed", notice=type(notice).__name__,
                          error=repr(exc))
            finally:
                self.book.notices.task_done()

    async def _apply(self, notice: Notice) -> None:
        if isinstance(notice, Release):
            await self._limits.release(notice.lease, by="dialer_call_over")
        elif isinstance(notice, QueueActivity | QueueSync):
            items = (notice.event,) if isinstance(notice, QueueActivity) else notice.items
            for following in [x for x in self._handles.values() if x.queue == notice.queue]:
                for item in items:
                    await following.runner.on_queue_event(item)
        else:
            h = self._handles.get((notice.tenant, notice.campaign_id))
            if h is None:
                log.warning("dialer_call_of_unknown_campaign", tenant=notice.tenant,
                            campaign=notice.campaign_id, call_id=notice.call_id)
                return
            if isinstance(notice, Answered):
                await h.runner.call_answered(notice.call_id)
            elif isinstance(notice, Failed):
                await h.runner.call_failed(notice.call_id, notice.outcome)
            elif isinstance(notice, Ended):
                await h.runner.call_ended(notice.call_id)

    # -- figures ---------------------------------------------------------------------------

    async def _publish_stats(self) -> None:
        while not self._stop.is_set():
            await self._pause(self.settings.stats_interval_s)
            for h in list(self._handles.values()):
                try:
                    await self._publish_one(h)
                except Exception as exc:
                    log.warning("dialer_stats_failed", tenant=h.tenant, campaign=h.campaign_id,
                                error=repr(exc))

    async def _publish_one(self, h: CampaignHandle) -> None:
        holder = await self._redis.get(CampaignKeys(h.tenant, h.campaign_id).lease)
        if text(holder) != self.owner:
            return  # another gateway paces it and reports it
        payload = stats_payload(h.stats(), dict(self.placer.results))
        await write_stats(self._redis, h.tenant, h.campaign_id, payload)
        if self._mqtt is not None:
            self._mqtt.publish(mqtt_kind(h.campaign_id), payload, tenant=h.tenant)

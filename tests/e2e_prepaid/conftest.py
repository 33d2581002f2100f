"""The gateway in-process (build_services, as the daemon does) with its debit ticker on a
clock SPEED times faster than real time, the simulated Asterisk at the same speed, a real
Redis and a real Mosquitto: a 90-second card call takes a few real seconds."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.config import parse_config
from gateway.metrics import Metrics
from gateway.wiring import Services, build_services
from limits import EmergencyNumbers, LimitsService
from prepaid.batches import BatchService, BatchSpec
from prepaid.cdr import Cdr, CdrStore
from prepaid.clock import ScaledClock
from prepaid.pins import PinHasher
from prepaid.rateplan_csv import parse_text
from prepaid.rateplan_store import RatePlanStore
from prepaid.rating import PlanSettings
from sim.agi_link import DTMF_VAR
from sim.channels import Channel
from sim.dialplan import ContextConfig
from sim.farend import Step
from sim.gateway_call import GatewayCall
from sim.simulator import AsteriskSim
from sim.world import WorldConfig
from tests.e2e.conftest import Stack
from tests.support.daemon import daemon_config
from tests.support.servers import MosquittoServer, RedisServer

SITE = "shop"
SPEED = 20.0
PIN_SECRET = "e2e-prepaid-secret-0123456789"
# 0.60 EUR a minute, per second: one cent a second
PLAN_CSV = "prefix,destination,rate,increments\n44,UK,0.60,1/1\n"
MARGIN_S = 10  # the dialplan's L() backstop, past CALLGATE_MAXSEC
TIMEOUT_MARGIN_S = 5  # prepaid-backstop: TIMEOUT(absolute) = CALLGATE_MAXSEC + this
# examples/asterisk/extensions.conf: Dial's U() subroutine records when the callee
# answered; the h extension takes that back, records the end, the answered ms Dial left
# on the calling channel and the callee's answer, then `release` with the same figures
ANSWER_SETS = ("DB(callgate_answer/${ARG1})=${STRFTIME(,,%s.%3q)}",)
H_ANSWER_AT = "CALLGATE_ANSWER_AT=${DB_DELETE(callgate_answer/${CALLGATE_LEASE})}"
H_END = ("DB(callgate_end/${CALLGATE_LEASE})=${STRFTIME(,,%s.%3q)},${ANSWEREDTIME_MS},"
         "${CALLGATE_ANSWER_AT}")
H_SETS = (H_ANSWER_AT, H_END)
RELEASE_ARGS = ",lease=${CALLGATE_LEASE},answered_ms=${ANSWEREDTIME_MS}," \
               "answered_at=${CALLGATE_ANSWER_AT}"
# the record of an older dialplan: no U(), end and answered ms only
H_END_OLD = "DB(callgate_end/${CALLGATE_LEASE})=${STRFTIME(,,%s.%3q)},${ANSWEREDTIME_MS}"


# numbers starting with these ring this many seconds before the far end answers
RING_S = {"4471": 3, "4472": 12, "4473": 3}


class Talker:
    """Far end that answers and talks until hung up (10 simulated minutes); numbers
    starting 449 hang up themselves after 20 s; those of RING_S ring first."""

    def plan(self, exten: str, rng: random.Random) -> tuple[Step, ...]:
        talk = "20" if exten.startswith("449") else "600"
        ring: tuple[Step, ...] = ()
        if exten[:4] in RING_S:
            ring = (("Ringing", ""), ("Wait", str(RING_S[exten[:4]])))
        return (*ring, ("Answer", ""), ("Wait", talk), ("Hangup", "16"))


@dataclass
class PrepaidStack:
    sim: AsteriskSim
    services: Services
    redis: aioredis.Redis
    clock: ScaledClock
    frames: list[dict[str, str]] = field(default_factory=list)
    # channels the simulated Asterisk was asked to hang up over AMI (the gateway's Hangup)
    ami_hangups: list[str] = field(default_factory=list)
    _request_hangup: Callable[..., None] | None = None

    def watch_ami_hangups(self) -> None:
        original = self._request_hangup = self.sim.dialplan.request_hangup

        def request_hangup(ch: Channel, cause: int | None, source: str = "ami") -> None:
            if source == "ami":
                self.ami_hangups.append(ch.name)
            original(ch, cause, source)

        self.sim.dialplan.request_hangup = request_hangup  # type: ignore[method-assign]

    async def card(self, value: int, tenant: str = "shop1") -> tuple[str, str]:
        hasher = PinHasher(PIN_SECRET.encode())
        batches = BatchService(self.redis, hasher, self.clock)
        issued = await batches.create(BatchSpec(count=1, value=value, currency="EUR",
                                                plan="std", tenant=tenant, sold=True))
        return issued.cards[0].number, issued.cards[0].pin

    def place(self, number: str, context: str, **variables: str) -> GatewayCall:
        return self.sim.place_call(number, context=context, caller_num="4930123",
                                   variables=variables)

    def place_ivr(self, typed: str, number: str = "s") -> GatewayCall:
        return self.place(number, "prepaid-ivr", **{DTMF_VAR: typed})

    async def decided(self, call: GatewayCall, timeout: float = 10.0) -> dict[str, str]:
        async with asyncio.timeout(timeout):
            while not call.var(call.g2, "CALLGATE_RESULT") and not call.ended.is_set():
                await asyncio.sleep(0.01)
        return {k: v for k, v in call.g2.variables.items() if k.startswith("CALLGATE_")}

    def hang_up(self, call: GatewayCall) -> None:
        """The caller puts the phone down (not counted as the gateway's AMI Hangup)."""
        hang = self._request_hangup or self.sim.dialplan.request_hangup
        hang(call.g2, 16)

    async def answered(self, call: GatewayCall, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not self.seen("DialEnd", Channel=call.g2.name, DialStatus="ANSWER"):
                await asyncio.sleep(0.02)

    def seen(self, event: str, **match: str) -> list[dict[str, str]]:
        return [f for f in self.frames if f.get("Event") == event
                and all(f.get(k) == v for k, v in match.items())]

    def at(self, event: str, **match: str) -> float:
        """Simulated time of the first such AMI event."""
        found = self.seen(event, **match)
        assert found, f"no {event} {match} in {len(self.frames)} events"
        return float(found[0]["_at"])

    async def cdrs(self, timeout: float = 10.0) -> list[Cdr]:
        store = CdrStore(self.redis)
        async with asyncio.timeout(timeout):
            while True:
                found = [c async for c in store.iter_range(0, 4e9)]
                if found:
                    return found
                await asyncio.sleep(0.05)

    async def balance(self, card: str) -> int:
        assert self.services.prepaid is not None
        return (await self.services.prepaid.cards.get(card)).balance


@pytest.fixture
async def stack(redis_proc: RedisServer, redis_client: aioredis.Redis,
                mosquitto_proc: MosquittoServer, tmp_path: Path
                ) -> AsyncIterator[PrepaidStack]:
    sim = AsteriskSim(speed=SPEED, world_config=WorldConfig(auth_fail_delay=0.1, seed=5))
    await sim.start()
    sim.set_far_end(Talker())
    cfg = parse_config(
        f'[site]\nname = "{SITE}"\n[redis]\nurl = "{redis_proc.url}"\n'
        f'[agi]\nlisten = "127.0.0.1:0"\n[daemon]\nstate_dir = "{tmp_path}"\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{mosquitto_proc.port}"\n'
        f'[prepaid]\npin_secret = "{PIN_SECRET}"\npin_tries = 3\ncard_failures = 3\n'
        f'[[asterisk]]\nname = "sim"\nport = {sim.ami_port}\nusername = "gateway"\n'
        f'secret = "gateway"\nping_interval = 2.0\naction_timeout = 3.0\n',
        "e2e.toml", environ={},
    )
    clock = ScaledClock(SPEED, start=sim.clock.now())
    store = RatePlanStore(redis_client, clock)
    parsed = parse_text(PLAN_CSV, PlanSettings("EUR", warn_seconds=60, warn_to="caller"))
    await store.save("std", PlanSettings("EUR", warn_seconds=60, warn_to="caller"),
                     parsed.entries)
    services = build_services(cfg, redis_client, Metrics())
    services.prepaid_clock = clock
    await services.start()
    agi = f"agi://127.0.0.1:{services.agi_port}"
    # as examples/asterisk/extensions.conf: the answered time goes along, for a gateway
    # that missed the answer on AMI
    release = f"{agi}/release{RELEASE_ARGS}"
    sim.add_context(ContextConfig(
        "prepaid-out", agi=f"{agi}/authorize,tenant=shop1,direction=out,card=${{CARD}}",
        release_agi=release, maxsec_margin=MARGIN_S, h_sets=H_SETS, answer_sets=ANSWER_SETS,
    ))
    sim.add_context(ContextConfig(
        "prepaid-ivr", agi=f"{agi}/prepaid,tenant=shop1,direction=out",
        release_agi=release, maxsec_margin=MARGIN_S, h_sets=H_SETS, answer_sets=ANSWER_SETS,
    ))
    sim.add_context(ContextConfig(
        "prepaid-booth",
        agi=f"{agi}/prepaid,tenant=shop1,direction=out,device=${{BOOTH}},dest=${{EXTEN}}",
        release_agi=release, maxsec_margin=MARGIN_S, h_sets=H_SETS, answer_sets=ANSWER_SETS,
    ))
    # the backstop of examples/asterisk/extensions.conf: TIMEOUT(absolute), set after the
    # decision, instead of L()
    sim.add_context(ContextConfig(
        "prepaid-backstop", agi=f"{agi}/authorize,tenant=shop1,direction=out,card=${{CARD}}",
        release_agi=release, timeout_margin=TIMEOUT_MARGIN_S, h_sets=H_SETS,
        answer_sets=ANSWER_SETS,
    ))
    st = PrepaidStack(sim, services, redis_client, clock)
    st.watch_ami_hangups()
    # every AMI event, stamped with the simulated time it happened
    sim.world.subscribe(lambda f: st.frames.append({**dict(f), "_at": str(sim.clock.now())}))
    async with asyncio.timeout(10):
        while not all(link.client.logged_in for link in services.asterisks.values()):
            await asyncio.sleep(0.02)
    try:
        yield st
    finally:
        await services.close()
        await sim.stop()


@asynccontextmanager
async def daemon_stack(tmp_path: Path, redis: RedisServer, *, seed: int, prepaid: str = "",
                       contexts: Callable[[str], Iterable[ContextConfig]],
                       ) -> AsyncIterator[Stack]:
    """The real daemon (a process, started and killed by the test) beside a simulated
    Asterisk at real speed whose far end talks; `contexts(agi_url)` gives its dialplan.
    `prepaid` is the body of the config's [prepaid] section, if any."""
    sim = AsteriskSim(speed=1.0, world_config=WorldConfig(auth_fail_delay=0.1, seed=seed))
    await sim.start()
    sim.set_far_end(Talker())
    client = aioredis.Redis.from_url(redis.url)
    limits = LimitsService(client, SITE, emergency=EmergencyNumbers(["112"]))
    extra = (
        '[limits]\nlease_ttl = 30.0\n\n'
        + (f"[prepaid]\n{prepaid}\n\n" if prepaid else "")
        + f'[[asterisk]]\nname = "sim"\nhost = "127.0.0.1"\nport = {sim.ami_port}\n'
        'username = "gateway"\nsecret = "gateway"\nping_interval = 2.0\naction_timeout = 3.0\n'
    )
    text, http_port, agi_port = daemon_config(tmp_path, redis_url=redis.url, site=SITE,
                                              extra=extra)
    for context in contexts(f"agi://127.0.0.1:{agi_port}"):
        sim.add_context(context)
    st = Stack(sim, redis.url, tmp_path, limits, text, client, http_port, agi_port)
    try:
        yield st
    finally:
        await st.aclose()

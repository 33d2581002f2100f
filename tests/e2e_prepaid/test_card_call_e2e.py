"""A card call through the simulated Asterisk: warning prompt, cut-off from the gateway,
CDR, MQTT events, and the limits lease released with the session."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiomqtt

from tests.e2e_prepaid.conftest import MARGIN_S, SITE, PrepaidStack
from tests.support.servers import MosquittoServer


async def _collect(port: int, into: list[tuple[str, dict[str, Any]]],
                   ready: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(f"callgate/{SITE}/events/prepaid/#", qos=1)
        ready.set()
        async for msg in client.messages:
            payload = msg.payload if isinstance(msg.payload, bytes) else b"{}"
            into.append((str(msg.topic), json.loads(payload)))


async def test_card_of_90s_is_warned_at_60s_left_and_cut_off_by_the_gateway(
    stack: PrepaidStack, mosquitto_proc: MosquittoServer
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    ready = asyncio.Event()
    listener = asyncio.create_task(_collect(mosquitto_proc.port, events, ready))
    await asyncio.wait_for(ready.wait(), 5)
    card, _ = await stack.card(90)  # 0.90 EUR at one cent a second: 90 s

    call = stack.place("442071234567", "prepaid-out", CARD=card)
    decided = await stack.decided(call)
    assert (decided["CALLGATE_RESULT"], decided["CALLGATE_REASON"]) == ("ALLOW", "ok")
    assert decided["CALLGATE_MAXSEC"] == "90"
    assert decided["CALLGATE_LEASE"]
    await asyncio.wait_for(call.ended.wait(), 20)

    caller = call.g2.name
    answered = stack.at("DialEnd", Channel=caller, DialStatus="ANSWER")
    # the warning: the gateway's Originate of the prompt extension, spying on the caller
    spies = stack.seen("ChanSpyStart")
    assert [s["SpyeeChannel"] for s in spies] == [caller]
    assert 29.0 <= float(spies[0]["_at"]) - answered <= 33.0  # 60 s of 90 left
    # cut off at 90 s by the gateway's AMI Hangup, well before the dialplan's L() backstop
    ended = stack.at("Hangup", Channel=caller)
    assert 89.0 <= ended - answered <= 90.0 + MARGIN_S / 2
    assert stack.services.prepaid is not None
    assert stack.services.prepaid.scheduler.stats.cut_offs == 1
    assert caller in stack.ami_hangups  # the gateway's AMI Hangup reached Asterisk

    cdrs = await stack.cdrs()
    assert len(cdrs) == 1
    cdr = cdrs[0]
    assert (cdr.ended_by, cdr.account, cdr.prefix) == ("credit", card, "44")
    assert 89 <= cdr.billable_s <= 91
    assert await stack.balance(card) + cdr.charge == 90  # money conserved to the cent
    assert await stack.balance(card) >= -1  # never below zero by more than one increment

    # the limits lease went with the session: nothing left counted for the tenant
    assert stack.services.limits is not None
    st = await stack.services.limits.settings.show_tenant("shop1")
    assert st.total.in_use == 0

    async with asyncio.timeout(5):
        while not any(t.endswith("/prepaid/cut_off") for t, _ in events):
            await asyncio.sleep(0.05)
    kinds = [t.rsplit("/events/", 1)[1] for t, _ in events]
    assert "prepaid/warning" in kinds and "prepaid/cut_off" in kinds
    warning = next(p for t, p in events if t.endswith("/prepaid/warning"))
    assert warning["tenant"] == "shop1"
    listener.cancel()

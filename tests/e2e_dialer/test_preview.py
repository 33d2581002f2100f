"""Preview, "agent first": on accept the gateway calls the agent's desk phone, which
answers by itself (the auto-answer header of its hardware profile), and only then is the
lead dialled, from the phone's own channel. Through the simulated Asterisk over real AMI."""

from __future__ import annotations

import asyncio
from datetime import time

from dialer.campaign import CallingWindow, Campaign, DialMode
from dialer.keys import CampaignKeys
from dialer.lead_store import LeadStore
from dialer.leads import LeadState, Outcome
from gateway.campaigns.placer import pjsip_endpoint
from gateway.campaigns.service import CampaignHandle
from gateway.devices import DeviceRegistry
from gateway.devices.contact_lookup import resync_from
from gateway.devices.events import AmiEvent
from hw_profiles import load_profiles
from sim.farend import Dist, RandomFarEnd
from tests.e2e_dialer.conftest import (
    TENANT,
    TRUNK,
    DialerRig,
    RigFactory,
    zones_open_and_closed,
)

YEALINK_T31P = "Yealink SIP-T31P 124.86.0.40"
YEALINK_ALERT = ("PJSIP_HEADER(add,Alert-Info)",
                 "<http://127.0.0.1>;info=alert-autoanswer;delay=0")
AGENT = "PJSIP/6001"
LEADS = ["+4915100000001", "+4915100000002"]


async def _preview_campaign(rig: DialerRig, devices: DeviceRegistry, name: str,
                            max_attempts: int) -> tuple[Campaign, CampaignHandle]:
    """A running preview campaign over the two leads, its trunk limited to 5 channels."""
    await rig.limits.settings.set_trunk_limit(TRUNK, 5)
    campaign = Campaign(TENANT, name, mode=DialMode.PREVIEW, trunk=TRUNK,
                        agent_queue="sales", caller_id="4930123456", max_attempts=max_attempts,
                        window=CallingWindow(time(6, 0), time(18, 0)))
    await rig.add_campaign(campaign)
    zone, _ = zones_open_and_closed(rig.sim.clock.now())
    await rig.import_rows(campaign, [(p, zone) for p in LEADS])
    service = rig.start_service(devices=devices)
    await rig.wait_for("campaign running",
                       lambda: service.handle(TENANT, campaign.campaign_id) is not None, 10)
    handle = service.handle(TENANT, campaign.campaign_id)
    assert handle is not None
    return campaign, handle


async def test_accepting_a_preview_rings_the_agents_phone_first(
        dialer_rig: RigFactory) -> None:
    async with dialer_rig(20.0) as rig:
        sim = rig.sim
        sim.set_far_end(RandomFarEnd(ring=Dist.fixed(2), talk=Dist.fixed(8),
                                     answer_probability=1.0, busy_rate=0.0))
        sim.register_phone("6001", user_agent=YEALINK_T31P)
        devices = DeviceRegistry(load_profiles())
        rig.client.subscribe("*", devices.handle_event)
        assert await resync_from(rig.client, devices)  # learns the phone's User-Agent
        snap = devices.device("6001")
        assert snap is not None and snap.profile.name == "yealink-t31p"

        # Channel life as the gateway's AMI session sees it, in order.
        seen: list[tuple[str, str, str]] = []

        def watch(ev: AmiEvent) -> None:
            name = ev.get("Event") or ""
            if name in ("Newchannel", "Newstate", "DialBegin"):
                seen.append((name, ev.get("Channel") or "",
                             ev.get("ChannelStateDesc") or ev.get("DestChannel") or ""))

        rig.client.subscribe("*", watch)

        campaign, handle = await _preview_campaign(rig, devices, "leads-by-hand", 1)

        await asyncio.sleep(0.5)  # a few pacing ticks: preview never dials by itself
        assert rig.originated == []

        offer = await handle.runner.offer_preview(AGENT)
        assert offer is not None and offer.lead.phone in LEADS
        lead = offer.lead.phone
        assert (await handle.runner.accept_preview(lead, AGENT)).placed

        # One Originate: to the agent's phone, with its auto-answer header; the lead is
        # only the extension the phone's channel runs once the phone has answered.
        await rig.wait_for("originate", lambda: len(rig.originated) == 1, 10)
        [req] = rig.originated
        assert req.channel == AGENT
        assert (req.context, req.exten) == ("callgate-dialer", lead)
        assert YEALINK_ALERT in req.variables
        assert any(k == "CALLGATE_LEASE" and v for k, v in req.variables)

        # Asterisk's order: the phone's channel, up (auto-answered), and only then the
        # Dial from it to the lead.
        await rig.wait_for("dial to the lead",
                           lambda: any(e[0] == "DialBegin" and e[1].startswith("PJSIP/6001-")
                                       for e in seen), 10)
        phone_up = next(i for i, e in enumerate(seen)
                        if e[0] == "Newstate" and e[1].startswith("PJSIP/6001-")
                        and e[2] == "Up")
        dial = next(i for i, e in enumerate(seen)
                    if e[0] == "DialBegin" and e[1].startswith("PJSIP/6001-"))
        first_channel = next(e for e in seen if e[0] == "Newchannel")
        assert first_channel[1].startswith("PJSIP/6001-")
        assert phone_up < dial
        lead_leg = seen[dial][2]
        assert lead_leg and not lead_leg.startswith("PJSIP/6001-")

        # The lead answered and talked to the agent: a connected attempt, never an
        # abandoned one, and the trunk slot back once it hung up.
        store, keys = LeadStore(rig.redis), CampaignKeys(TENANT, campaign.campaign_id)
        async with asyncio.timeout(20):
            while (done := await store.get(keys, lead)) is None or done.state is not \
                    LeadState.DONE:
                await asyncio.sleep(0.05)
        [attempt] = await store.attempts(keys, lead)
        assert attempt.outcome is Outcome.CONNECTED
        assert attempt.agent == AGENT
        async with asyncio.timeout(10):
            while await rig.in_use("trunk", TRUNK) != 0:
                await asyncio.sleep(0.05)
        assert handle.stats().abandoned == 0


async def test_accepting_for_a_phone_that_is_not_registered_dials_nothing(
        dialer_rig: RigFactory) -> None:
    """The click-to-call checks hold for preview too: an agent whose desk phone went
    offline, or one Asterisk never saw, gets a clear reason, and no slot is taken."""
    async with dialer_rig(20.0) as rig:
        sim = rig.sim
        sim.register_phone("6001", user_agent=YEALINK_T31P)
        devices = DeviceRegistry(load_profiles())
        rig.client.subscribe("*", devices.handle_event)
        assert await resync_from(rig.client, devices)
        sim.unregister_phone("6001")
        await rig.wait_for("phone offline", lambda: (
            (snap := devices.device("6001")) is not None and not snap.registered), 10)

        _, handle = await _preview_campaign(rig, devices, "offline-agent", 3)

        for agent, reason in ((AGENT, "device_offline"), ("PJSIP/6009", "unknown_device")):
            offer = await handle.runner.offer_preview(agent)
            assert offer is not None
            result = await handle.runner.accept_preview(offer.lead.phone, agent)
            assert (result.placed, result.reason) == (False, reason)
        await asyncio.sleep(0.3)
        assert rig.originated == []
        assert await rig.in_use("trunk", TRUNK) == 0


def test_only_pjsip_agents_take_the_desk_phone_path() -> None:
    assert pjsip_endpoint(AGENT) == "6001"
    assert pjsip_endpoint("pjsip/6002") == "6002"
    assert pjsip_endpoint("Local/6001@agents") is None
    assert pjsip_endpoint("PJSIP/") is None

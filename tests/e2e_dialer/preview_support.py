"""What the preview tests over the API and MQTT share: a preview campaign of three leads
on the dialer rig, a Yealink desk phone registered for the agent, the dialer running."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import time

from dialer.campaign import CallingWindow, Campaign, DialMode
from gateway.campaigns import CampaignService
from gateway.devices import DeviceRegistry
from gateway.devices.contact_lookup import resync_from
from gateway.mqtt_events import MqttPublisher
from hw_profiles import load_profiles
from sim.farend import Dist, RandomFarEnd
from sim.originate import OriginateRequest
from tests.e2e_dialer.conftest import TENANT, TRUNK, DialerRig, zones_open_and_closed

YEALINK_T31P = "Yealink SIP-T31P 124.86.0.40"
YEALINK_ALERT = ("PJSIP_HEADER(add,Alert-Info)",
                 "<http://127.0.0.1>;info=alert-autoanswer;delay=0")
AGENT = "PJSIP/6001"
LEADS = ("+4915100000001", "+4915100000002", "+4915100000003")
CAMPAIGN = "by-hand"


@dataclass
class PreviewSetup:
    campaign: Campaign
    service: CampaignService


async def start_preview(rig: DialerRig, mqtt: MqttPublisher | None = None) -> PreviewSetup:
    rig.sim.set_far_end(RandomFarEnd(ring=Dist.fixed(2), talk=Dist.fixed(8),
                                     answer_probability=1.0, busy_rate=0.0))
    rig.sim.register_phone("6001", user_agent=YEALINK_T31P)
    devices = DeviceRegistry(load_profiles())
    rig.client.subscribe("*", devices.handle_event)
    assert await resync_from(rig.client, devices)
    await rig.limits.settings.set_trunk_limit(TRUNK, 5)
    campaign = Campaign(TENANT, CAMPAIGN, mode=DialMode.PREVIEW, trunk=TRUNK,
                        caller_id="4930123456", max_attempts=3,
                        window=CallingWindow(time(6, 0), time(18, 0)))
    await rig.add_campaign(campaign)
    zone, _ = zones_open_and_closed(rig.sim.clock.now())
    report = await rig.import_rows(campaign, [(p, zone) for p in LEADS])
    assert report.imported == len(LEADS)
    service = rig.start_service(mqtt=mqtt, devices=devices)
    await rig.wait_for("campaign running",
                       lambda: service.handle(TENANT, CAMPAIGN) is not None, 10)
    await asyncio.sleep(0.3)  # some pacing ticks: a preview campaign never dials by itself
    assert rig.originated == []
    return PreviewSetup(campaign, service)


async def agent_phone_rung_for(rig: DialerRig, lead: str) -> OriginateRequest:
    """The one Originate of an accepted offer: the agent's phone, with its auto-answer
    header, running the dialer context with the lead as extension."""
    await rig.wait_for("originate", lambda: len(rig.originated) == 1, 10)
    [req] = rig.originated
    assert req.channel == AGENT
    assert (req.context, req.exten) == ("callgate-dialer", lead)
    assert YEALINK_ALERT in req.variables
    return req

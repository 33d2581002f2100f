"""The real daemon (subprocess) runs a campaign found in Redis against the simulator.

Active once gateway/wiring.py builds a CampaignService (Services.campaigns).
"""

from __future__ import annotations

import asyncio
from datetime import time

from dialer.campaign import CallingWindow, Campaign, DialMode
from dialer.campaign_store import CampaignStore
from dialer.csv_import import LeadImporter
from dialer.keys import CampaignKeys
from dialer.lead_store import LeadStore
from dialer.leads import LeadState
from sim.dialplan import ContextConfig
from sim.farend import Dist, RandomFarEnd
from tests.e2e.conftest import Stack
from tests.e2e_dialer.conftest import zones_open_and_closed

PHONES = [f"+49151{i:08d}" for i in range(1, 7)]


async def test_daemon_dials_a_campaign_through_limits(stack: Stack) -> None:
    sim = stack.sim
    sim.add_context(ContextConfig("callgate-dialer", agi=""))
    sim.set_far_end(RandomFarEnd(ring=Dist.fixed(0.5), talk=Dist.fixed(1.0),
                                 answer_probability=1.0, busy_rate=0.0))
    sim.queues.add_queue("sales")
    for i in range(2):
        sim.queues.add_member("sales", f"PJSIP/agent{i}", ring=Dist.fixed(0.2),
                              talk=Dist.fixed(60))
    redis = stack.limits_redis
    await stack.limits.settings.set_trunk_limit("sip-out", 2)
    campaign = Campaign("acme", "smoke", mode=DialMode.PROGRESSIVE, trunk="sip-out",
                        agent_queue="sales", wrap_up_s=0.0,
                        window=CallingWindow(time(6, 0), time(18, 0)))
    await CampaignStore(redis).put(campaign)
    zone, _ = zones_open_and_closed(sim.clock.now())
    csv = stack.tmp / "leads.csv"
    csv.write_text("phone,timezone\n" + "".join(f"{p},{zone}\n" for p in PHONES))
    await LeadImporter(LeadStore(redis), sim.clock.now).import_leads(campaign, csv)

    await stack.start_daemon()
    store, keys = LeadStore(redis), CampaignKeys("acme", "smoke")
    async with asyncio.timeout(60):
        while True:
            leads = [await store.get(keys, p) for p in PHONES]
            if all(lead is not None and lead.state is LeadState.DONE for lead in leads):
                break
            await asyncio.sleep(0.2)
    await stack.wait_in_use({("trunk", "sip-out"): 0, ("tenant_outbound", "acme"): 0}, 10)
    events = stack.daemon.log_events() if stack.daemon else []
    assert len([e for e in events if e["event"] == "dialer_originated"]) == len(PHONES)

"""Redis key layout of the dialer.

Every key of one campaign carries the hash tag `{campaign:TENANT:ID}`, so a campaign's
leads, due index, counters and audit trail live in one Redis Cluster slot and each Lua
script touches one slot. Tenant-wide keys carry `{tenant:TENANT}`; the global do-not-call
list has its own slot. A tenant's id is part of every key: one tenant cannot name, and so
cannot read, another tenant's campaign or leads.
"""

from __future__ import annotations

from dialer.campaign import check_id

GLOBAL_DNC = "dialer:{dnc:global}:numbers"
# Every campaign of every tenant as "TENANT:ID", so a gateway finds the campaigns to pace.
ALL_CAMPAIGNS = "dialer:{campaigns}:all"


class CampaignKeys:
    def __init__(self, tenant: str, campaign_id: str) -> None:
        check_id("tenant", tenant)
        check_id("campaign_id", campaign_id)
        self.tenant = tenant
        self.campaign_id = campaign_id
        p = f"dialer:{{campaign:{tenant}:{campaign_id}}}"
        self.prefix = p
        self.config = f"{p}:config"
        self.due = f"{p}:due"  # zset lead -> epoch seconds it may next be taken
        self.counts = f"{p}:counts"
        self.window = f"{p}:window"  # rolling counters, field "<counter>:<bucket>"
        self.changes = f"{p}:changes"  # supervisor audit trail, newest first
        self.lease = f"{p}:runner"  # which gateway paces this campaign

    def lead(self, phone: str) -> str:
        return f"{self.prefix}:lead:{phone}"

    def attempts(self, phone: str) -> str:
        return f"{self.prefix}:attempts:{phone}"


def tenant_campaigns(tenant: str) -> str:
    return f"dialer:{{tenant:{check_id('tenant', tenant)}}}:campaigns"


def tenant_dnc(tenant: str) -> str:
    return f"dialer:{{tenant:{check_id('tenant', tenant)}}}:dnc"

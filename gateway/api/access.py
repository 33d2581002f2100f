"""Which tenants a token may read and change (invariant 4: one tenant never sees another's
calls, cards, leads or counters).

- A site-wide token (admin or operator with tenant `*`) reads and changes every tenant.
- A reseller token reads its own tenant and every tenant beneath it (sub-tenants, their
  sub-tenants, ...), and changes only those beneath it: its own limits are what the site
  sold it, so they are set by the site.
- Any other tenant token reads its own tenant only and changes no tenant's limits (a
  tenant's limits are what it has been sold; it is not its own reseller).

Sub-tenants are found through the public limits API (`LimitSettings.show_tenant(t)
.reseller`, as written by `set_reseller`), walking up from the tenant in question, on every
request (memoized within the request only): a tenant moved to another reseller is seen by
the new one and hidden from the old one on the next request.

Refusals: a tenant named in the path that the token may not see is answered 403
`tenant_forbidden` *before* anything is looked up, for existing and made-up tenants alike,
so the answer says nothing about what exists. Resources named by an opaque id (a token
id, later a card or lead id) answer 404 whether they are absent or another tenant's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum

from gateway.api.tokens import Role, TokenInfo
from limits import LimitSettings


class Scope(StrEnum):
    """How a route decides which tenant data a token may touch."""

    PUBLIC = "public"  # no token needed (the OpenAPI document)
    ANY_TOKEN = "any_token"  # any valid token; the data belongs to no tenant
    SITE = "site"  # site-wide tokens only (site resources: trunks, devices, tokens)
    TENANT = "tenant"  # the path's {tenant} must be readable (GET) or changeable (others)
    FILTERED = "filtered"  # lists: only visible tenants' items; ?tenant= narrows


ParentLookup = Callable[[str], Awaitable[str | None]]
MAX_DEPTH = 16  # deeper than limits/ allows; a longer walk means a loop


class TenantAccess:
    """What one request's token may see; reseller lookups are memoized for the request."""

    def __init__(self, principal: TokenInfo, parent_of: ParentLookup | None = None) -> None:
        self.principal = principal
        self._parent_of = parent_of
        self._parents: dict[str, str | None] = {}

    @property
    def site_wide(self) -> bool:
        return self.principal.site_wide

    @property
    def single_tenant(self) -> str | None:
        """The one tenant a token sees, when it sees exactly one (lets a list be asked of
        limits/ for that tenant alone instead of filtered afterwards)."""
        if self.site_wide or self.principal.role is Role.RESELLER:
            return None
        return self.principal.tenant

    async def may_read(self, tenant: str) -> bool:
        return (self.site_wide or tenant == self.principal.tenant
                or await self.is_beneath(tenant))

    async def may_write(self, tenant: str) -> bool:
        return self.site_wide or await self.is_beneath(tenant)

    async def readable(self, tenants: Iterable[str]) -> list[str]:
        return [t for t in tenants if await self.may_read(t)]

    async def is_beneath(self, tenant: str) -> bool:
        """True if the token is a reseller and `tenant` is one of its sub-tenants (at any
        depth)."""
        if self.principal.role is not Role.RESELLER or self._parent_of is None:
            return False
        root = self.principal.tenant
        seen = {tenant}
        up = await self._parent(tenant)
        while up is not None and up not in seen and len(seen) < MAX_DEPTH:
            if up == root:
                return True
            seen.add(up)
            up = await self._parent(up)
        return False

    async def _parent(self, tenant: str) -> str | None:
        if tenant not in self._parents:
            assert self._parent_of is not None
            self._parents[tenant] = await self._parent_of(tenant)
        return self._parents[tenant]


def parents_from_limits(settings: LimitSettings) -> ParentLookup:
    async def parent_of(tenant: str) -> str | None:
        return (await settings.show_tenant(tenant)).reseller

    return parent_of

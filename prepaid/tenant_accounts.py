"""Tenant prepaid accounts (e.g. a dialer's minutes): debited live exactly like a card.

The account id is `tenant.<T>`; sessions, debits, CDRs and the floor of minus one increment
are the card ones. Such an account has no PIN and no sale step: it is active, or on hold
after a failed auto recharge (new calls refused with `no_credit` until money arrives or
an operator releases the hold).
"""

from __future__ import annotations

import structlog

from prepaid import keys
from prepaid.cards import Card, CardService, CardStatus, card_fields
from prepaid.clock import Clock, to_ms
from prepaid.errors import CardStateError
from prepaid.money import check_currency
from prepaid.replies import as_int
from prepaid.scripts import PrepaidScripts, RedisClient

log = structlog.get_logger(__name__)


def tenant_account_id(tenant: str) -> str:
    keys.check_id("tenant", tenant)
    return keys.check_id("account", f"tenant.{tenant}")


class TenantAccounts:
    def __init__(
        self,
        redis: RedisClient,
        clock: Clock,
        cards: CardService,
        scripts: PrepaidScripts | None = None,
    ) -> None:
        self._r = redis
        self._clock = clock
        self._cards = cards
        self._scripts = scripts or PrepaidScripts.register(redis)

    async def open(
        self, tenant: str, currency: str, plan: str, balance: int = 0,
        auto_recharge: bool = False,
    ) -> Card:
        account = tenant_account_id(tenant)
        check_currency(currency)
        keys.check_id("plan", plan)
        fields = card_fields(
            account=account, kind="tenant", tenant=tenant, plan=plan, currency=currency,
            balance=balance, status=CardStatus.ACTIVE, now_ms=to_ms(self._clock.now()),
        )
        fields["activated_ms"] = fields["created_ms"]
        created = await self._scripts.card_create(
            keys=[keys.card(account)], args=[x for kv in fields.items() for x in kv]
        )
        if as_int(created) != 1:
            raise CardStateError(f"tenant {tenant} already has a prepaid account")
        await self._r.sadd(keys.tenant_cards(tenant), account)
        if auto_recharge:
            await self._r.sadd(keys.AUTORECHARGE, account)
        log.info("tenant_account_opened", tenant=tenant, account=account, currency=currency)
        return await self._cards.get(account)

    async def set_auto_recharge(self, tenant: str, enabled: bool) -> None:
        account = tenant_account_id(tenant)
        await self._cards.get(account)
        if enabled:
            await self._r.sadd(keys.AUTORECHARGE, account)
        else:
            await self._r.srem(keys.AUTORECHARGE, account)

    async def release_hold(self, tenant: str) -> Card:
        account = tenant_account_id(tenant)
        card = await self._cards.get(account)
        if card.status is not CardStatus.HOLD:
            return card
        await self._r.hset(keys.card(account), mapping={"status": "active", "hold_reason": ""})
        log.info("tenant_account_hold_released", tenant=tenant, account=account)
        return await self._cards.get(account)

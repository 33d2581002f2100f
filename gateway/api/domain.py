"""The prepaid and dialer services a request works with, built over the API's Redis (they
are plain async services over Redis: nothing is shared between requests but Redis), and
the translation of their errors into the API's error shape."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from dialer.campaign import CampaignError
from dialer.campaign_store import CampaignNotFound, CampaignStore
from dialer.clock import SystemClock as DialerClock
from dialer.controls import SupervisorControls
from dialer.csv_import import LeadImportError
from dialer.lead_store import LeadStore
from gateway.api.errors import ApiError, invalid, not_found, unavailable
from gateway.api.routes import Handler, Reply, RequestContext
from prepaid.batches import BatchService
from prepaid.cards import CardService
from prepaid.cdr import CdrStore
from prepaid.clock import SystemClock
from prepaid.errors import (
    BadInput,
    CardNotFound,
    CardStateError,
    CurrencyMismatch,
    PlanNotFound,
)
from prepaid.pins import PinHasher
from prepaid.rateplan_store import RatePlanStore
from prepaid.scripts import PrepaidScripts, RedisClient
from prepaid.vouchers import VoucherService


@dataclass(frozen=True)
class Prepaid:
    redis: RedisClient
    cards: CardService
    plans: RatePlanStore
    cdrs: CdrStore
    hasher: PinHasher | None

    def batches(self) -> BatchService:
        return BatchService(self.redis, self._need_hasher(), SystemClock())

    def vouchers(self) -> VoucherService:
        return VoucherService(self.redis, self._need_hasher(), SystemClock(), self.cards)

    def _need_hasher(self) -> PinHasher:
        if self.hasher is None:  # pragma: no cover - routes that need it declare pin_secret
            raise unavailable("pin_secret_unavailable", "no [prepaid] pin_secret configured")
        return self.hasher


def prepaid(ctx: RequestContext) -> Prepaid:
    redis = ctx.deps.redis
    clock = SystemClock()
    scripts = PrepaidScripts.register(redis)
    secret = ctx.deps.pin_secret
    return Prepaid(redis, CardService(redis, clock, scripts), RatePlanStore(redis, clock),
                   CdrStore(redis, scripts), PinHasher(secret) if secret else None)


@dataclass(frozen=True)
class Dialer:
    campaigns: CampaignStore
    controls: SupervisorControls
    leads: LeadStore


def dialer(ctx: RequestContext) -> Dialer:
    return dialer_over(ctx.deps.redis)


def dialer_over(redis: RedisClient) -> Dialer:
    store = CampaignStore(redis)
    return Dialer(store, SupervisorControls(redis, store, DialerClock()), LeadStore(redis))


def domain_errors(handler: Handler) -> Handler:
    """Domain refusals as API errors: not found 404, a state that forbids the change 409,
    bad input 422. Raised before any write (the services check first), so nothing is
    half-applied."""

    @functools.wraps(handler)
    async def wrapped(ctx: RequestContext) -> Reply:
        try:
            return await handler(ctx)
        except CardNotFound as exc:
            raise not_found("card_not_found", str(exc)) from None
        except PlanNotFound as exc:
            raise not_found("plan_not_found", str(exc)) from None
        except CampaignNotFound as exc:
            raise not_found("campaign_not_found", str(exc)) from None
        except CurrencyMismatch as exc:
            raise invalid("currency_mismatch", str(exc), "currency") from None
        except CardStateError as exc:
            raise ApiError(409, "card_state", str(exc)) from None
        except LeadImportError as exc:
            raise invalid("leads_unreadable", str(exc), "csv") from None
        except (BadInput, CampaignError) as exc:
            raise invalid("invalid_value", str(exc)) from None

    return wrapped

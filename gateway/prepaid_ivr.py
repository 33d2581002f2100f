"""The `prepaid` FastAGI route: the call-shop IVR, then the same decision as `authorize`.

`AGI(agi://gw:4573/prepaid,tenant=shop1,direction=out[,card=...][,dest=...][,device=...])`

1. the card: `card=` (a booth's dialplan), else the card bound to `device=` (`callgate
   card bind --device booth-3`), else the caller types card number and PIN, with at most
   `[prepaid] pin_tries` tries; failures count per card and per caller id, and too many
   lock the card or the caller out (prepaid.pins);
2. the balance is announced (SAY NUMBER, major then minor units);
3. the destination: `dest=` or typed by the caller (ended by `#`); `*#` instead first
   asks for a voucher code and adds its value to the card (balance said again);
4. the decision, exactly as `authorize` with `card=` (limits lease + card session under one
   CALLGATE_LEASE), then how many minutes the call may last is announced.

Sound files (Asterisk's sounds dir, see examples/asterisk/README.md): callgate-card-number,
callgate-pin, callgate-bad-pin, callgate-card-locked, callgate-balance, callgate-point,
callgate-dest, callgate-minutes, callgate-denied.
Every path ends with the five CALLGATE_* variables set, so the dialplan after AGI() is
the same as for `authorize`.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import structlog
from redis.exceptions import RedisError

from gateway.agi import AgiRequest, AgiSession, Decision, Router, apply_decision
from gateway.agi.errors import AgiError
from gateway.prepaid_calls import PrepaidCalls
from prepaid.errors import PrepaidError
from prepaid.money import exponent
from prepaid.pins import PinResult
from prepaid.vouchers import RedeemStatus

log = structlog.get_logger(__name__)

ROUTE_TIMEOUT_S = 300.0  # a caller typing numbers, not a machine
DIGIT_TIMEOUT_MS = 8000
VOUCHER_KEY = "*"  # typed instead of a destination: top up with a voucher first


class Authorizer(Protocol):
    async def authorize(self, req: AgiRequest, session: AgiSession) -> None: ...


class PrepaidIvr:
    def __init__(self, calls: Authorizer, prepaid: PrepaidCalls, pin_tries: int = 3) -> None:
        self._calls = calls
        self._prepaid = prepaid
        self._tries = max(1, pin_tries)

    def register(self, router: Router) -> None:
        router.register("prepaid", self.route, timeout=ROUTE_TIMEOUT_S)

    async def route(self, req: AgiRequest, session: AgiSession) -> None:
        blog = log.bind(call_id=req.call_id, caller=req.caller)
        try:
            await self._run(req, session, blog)
        except (RedisError, OSError) as exc:
            blog.warning("prepaid_ivr_backend_unavailable", error=str(exc))
            await _deny(session, Decision.deny("backend_unavailable", 41))

    async def _run(self, req: AgiRequest, session: AgiSession, blog: structlog.BoundLogger
                   ) -> None:
        args = dict(req.args)
        card = args.get("card", "")
        if not card and args.get("device"):
            card = await self._prepaid.cards.booth_card(args["device"]) or ""
        await session.answer()
        if not card:
            refusal, card = await self._ask_card(req, session, blog)
            if refusal is not None:
                await _deny(session, refusal)
                return
        await self._announce_balance(session, card)
        dest = args.get("dest", "")
        if not dest:
            dest = (await session.get_data("callgate-dest", DIGIT_TIMEOUT_MS, 24)).digits
            if dest == VOUCHER_KEY:
                await self._redeem(session, card, blog)
                dest = (await session.get_data("callgate-dest", DIGIT_TIMEOUT_MS, 24)).digits
        if not dest:
            blog.info("prepaid_ivr_no_destination", card=card)
            await _deny(session, Decision.deny("no_route", 1))
            return
        args.update(card=card, dest=dest)
        if dest.isdigit():  # for Dial(PJSIP/${CALLGATE_DEST}@trunk) after AGI()
            await session.set_variable("CALLGATE_DEST", dest)
        await self._calls.authorize(dataclasses.replace(req, args=args), session)
        maxsec = await session.get_variable("CALLGATE_MAXSEC") or "0"
        result = await session.get_variable("CALLGATE_RESULT")
        if result == "ALLOW" and maxsec.isdigit() and int(maxsec) > 0:
            await session.say_number(int(maxsec) // 60)
            await session.stream_file("callgate-minutes")
        elif result != "ALLOW":
            await session.stream_file("callgate-denied")

    async def _ask_card(self, req: AgiRequest, session: AgiSession,
                        blog: structlog.BoundLogger) -> tuple[Decision | None, str]:
        pins = self._prepaid.pins
        if pins is None:
            blog.error("prepaid_ivr_without_pin_secret",
                       detail="set [prepaid] pin_secret to check PINs")
            return Decision.deny("bad_request", 21), ""
        for attempt in range(1, self._tries + 1):
            number = (await session.get_data("callgate-card-number", DIGIT_TIMEOUT_MS, 20)).digits
            pin = (await session.get_data("callgate-pin", DIGIT_TIMEOUT_MS, 20)).digits
            result = await pins.verify_pin(number, pin, req.caller)
            if result is PinResult.OK:
                return None, number
            blog.info("prepaid_ivr_pin_refused", card=number, attempt=attempt,
                      result=result.value)
            if result in (PinResult.CARD_LOCKED, PinResult.CALLER_LOCKED):
                await session.stream_file("callgate-card-locked")
                return Decision.deny(result.reason, 21), ""
            if result is PinResult.CARD_BLOCKED:
                return Decision.deny("card_blocked", 21), ""
            await session.stream_file("callgate-bad-pin")
        return Decision.deny("bad_pin", 21), ""

    async def _redeem(self, session: AgiSession, card: str,
                      blog: structlog.BoundLogger) -> None:
        """`*` instead of a destination: a voucher code, credited to the card."""
        vouchers = self._prepaid.vouchers
        code = (await session.get_data("callgate-voucher", DIGIT_TIMEOUT_MS, 24)).digits
        if vouchers is None:
            await session.stream_file("callgate-voucher-refused")
            return
        res = await vouchers.redeem(code, card)
        blog.info("prepaid_ivr_voucher", card=card, status=res.status.value,
                  amount=res.amount)
        if res.status is RedeemStatus.OK:
            await self._announce_balance(session, card)
        else:
            await session.stream_file("callgate-voucher-refused")

    async def _announce_balance(self, session: AgiSession, card: str) -> None:
        try:
            info = await self._prepaid.cards.get(card)
        except PrepaidError:
            return  # the decision that follows says why (card_blocked)
        scale = 10 ** exponent(info.currency)
        major, minor = divmod(max(info.balance, 0), scale)
        await session.stream_file("callgate-balance")
        await session.say_number(major)
        if scale > 1:
            await session.stream_file("callgate-point")
            await session.say_number(minor)


async def _deny(session: AgiSession, decision: Decision) -> None:
    try:
        await apply_decision(session, decision)
    except (AgiError, OSError) as exc:
        log.info("prepaid_ivr_caller_gone", error=str(exc))

"""The card actions the CLI had and the API lacked: lifting a PIN lock-out, and binding a
call-shop booth phone to a card (its calls are then charged to it) and unbinding it."""

from __future__ import annotations

from prepaid import keys
from prepaid.cards import CardService
from prepaid.clock import SystemClock
from prepaid.pins import PinGuard, PinHasher, PinResult
from prepaid.scripts import PrepaidScripts
from tests.api.conftest import PIN_SECRET, A, Api, B, redis_state


async def _sold_card(api: Api, token: str, tenant: str) -> dict[str, str]:
    got = await api.call("POST", f"/v1/tenants/{tenant}/cards", token, json_body={
        "count": 1, "value": "10.00", "currency": "EUR", "plan": "standard", "sold": True})
    assert got.status == 201, got.text
    card: dict[str, str] = got.body["cards"][0]
    return card


async def test_unlock_lifts_a_pin_lock_out(world: Api) -> None:
    token = await world.token("operator", A)
    card = await _sold_card(world, token, A)
    pins = PinGuard(world.redis, PinHasher(PIN_SECRET), SystemClock())
    wrong = "0000" if card["pin"] != "0000" else "1111"
    for _ in range(5):
        await pins.verify_pin(card["card"], wrong, caller=f"100{_}")
    assert await pins.verify_pin(card["card"], card["pin"], "200") is PinResult.CARD_LOCKED

    path = f"/v1/tenants/{A}/cards/{card['card']}/unlock"
    got = await world.call("POST", path, token)
    assert got.status == 200, got.text
    assert (got.body["was_locked"], got.body["card"]["card"]) == (True, card["card"])
    assert await pins.verify_pin(card["card"], card["pin"], "200") is PinResult.OK
    again = await world.call("POST", path, token)
    assert (again.status, again.body["was_locked"]) == (200, False)

    theirs = await world.token("operator", B)  # B names A's card under its own path
    hidden = await world.call("POST", f"/v1/tenants/{B}/cards/{card['card']}/unlock", theirs)
    assert (hidden.status, hidden.body["error"]["code"]) == (404, "card_not_found")


async def test_a_booth_is_bound_to_a_card_and_unbound(world: Api) -> None:
    cards = CardService(world.redis, SystemClock(), PrepaidScripts.register(world.redis))
    mine, theirs = await world.token("operator", A), await world.token("operator", B)
    a_card = (await _sold_card(world, mine, A))["card"]
    b_card = (await _sold_card(world, theirs, B))["card"]
    a_path, b_path = f"/v1/tenants/{A}/cards/{a_card}", f"/v1/tenants/{B}/cards/{b_card}"

    bound = await world.call("POST", f"{a_path}/bind", mine,
                             json_body={"device": "booth-3", "hours": 0.5})
    assert bound.status == 200, bound.text
    assert (bound.body["device"], bound.body["card"], bound.body["bound"]) == (
        "booth-3", a_card, True)
    assert await cards.booth_card("booth-3") == a_card
    assert 0 < await world.redis.ttl(keys.booth("booth-3")) <= 1800  # half an hour

    # B cannot take A's booth over, nor end A's binding from its own card.
    before = await redis_state(world.redis)
    taken = await world.call("POST", f"{b_path}/bind", theirs, json_body={"device": "booth-3"})
    assert (taken.status, taken.body["error"]["code"]) == (409, "booth_taken")
    assert a_card not in taken.text
    stolen = await world.call("POST", f"{b_path}/unbind", theirs,
                              json_body={"device": "booth-3"})
    assert (stolen.status, stolen.body["error"]["code"]) == (404, "booth_not_bound")
    assert await redis_state(world.redis) == before
    assert await cards.booth_card("booth-3") == a_card

    bad = await world.call("POST", f"{a_path}/bind", mine, json_body={"device": "booth 3!"})
    assert (bad.status, bad.body["error"]["field"]) == (422, "device")

    gone = await world.call("POST", f"{a_path}/unbind", mine, json_body={"device": "booth-3"})
    assert (gone.status, gone.body["bound"]) == (200, False)
    assert await cards.booth_card("booth-3") is None
    # Free again: now B may bind it to its card.
    assert (await world.call("POST", f"{b_path}/bind", theirs,
                             json_body={"device": "booth-3"})).status == 200
    assert await cards.booth_card("booth-3") == b_card

"""Cards, vouchers, rate plans and CDR export over /v1/: what an operator of a call shop
sees and changes, and that one tenant's token never reaches another tenant's cards."""

from __future__ import annotations

import csv
import io
import json

from tests.api.conftest import A, Api, B, redis_state


async def _new_cards(api: Api, token: str, tenant: str, count: int = 2) -> list[dict[str, str]]:
    got = await api.call("POST", f"/v1/tenants/{tenant}/cards", token, json_body={
        "count": count, "value": "10.00", "currency": "EUR", "plan": "standard"})
    assert got.status == 201, got.text
    cards: list[dict[str, str]] = got.body["cards"]
    assert len(cards) == count and all(c["pin"].isdigit() for c in cards)
    return cards


async def test_card_life_cycle_through_the_api(world: Api) -> None:
    token = await world.token("operator", A)  # the shop's own token
    card = (await _new_cards(world, token, A))[0]["card"]
    path = f"/v1/tenants/{A}/cards/{card}"
    shown = await world.call("GET", path, token)
    assert shown.status == 200
    assert (shown.body["status"], shown.body["balance"], shown.body["balance_text"]) == (
        "created", 1000, "10.00")
    assert (await world.call("POST", f"{path}/sell", token)).body["status"] == "sold"
    for _ in range(2):  # a retried top-up with the same receipt is applied once
        top = await world.call("POST", f"{path}/topup", token,
                               json_body={"amount": "2.50", "reference": "R-1"})
        assert top.status == 200
    assert (top.body["applied"], top.body["card"]["balance"]) == (False, 1250)
    bad = await world.call("POST", f"{path}/topup", token,
                           json_body={"amount": "2.505", "reference": "R-2"})
    assert bad.status == 422
    blocked = await world.call("POST", f"{path}/block", token, json_body={"reason": "lost"})
    assert (blocked.body["status"], blocked.body["blocked_reason"]) == ("blocked", "lost")
    again = await world.call("POST", f"{path}/sell", token)
    assert (again.status, again.body["error"]["code"]) == (409, "card_state")
    listed = await world.call("GET", "/v1/cards", token, params={"status": "blocked"})
    assert [c["card"] for c in listed.body["cards"]] == [card]


async def test_another_tenants_card_is_not_found_under_ones_own_path(world: Api) -> None:
    theirs = (await _new_cards(world, await world.token("operator", B), B, 1))[0]["card"]
    mine = await world.token("operator", A)
    before = await redis_state(world.redis)
    for method, suffix, body in (("GET", "", None), ("POST", "/sell", None),
                                 ("POST", "/block", {}),
                                 ("POST", "/topup", {"amount": "1.00", "reference": "x"})):
        got = await world.call(method, f"/v1/tenants/{A}/cards/{theirs}{suffix}", mine,
                               json_body=body)
        assert (got.status, got.body["error"]["code"]) == (404, "card_not_found"), suffix
        assert B not in got.text
    listed = await world.call("GET", "/v1/cards", mine)
    assert theirs not in listed.text and all(c["tenant"] == A for c in listed.body["cards"])
    assert await redis_state(world.redis) == before


async def test_vouchers_top_up_a_card_once_and_only_of_their_tenant(world: Api) -> None:
    token = await world.token("operator", A)
    made = await world.call("POST", f"/v1/tenants/{A}/vouchers", token,
                            json_body={"count": 2, "value": "5.00", "currency": "EUR"})
    assert made.status == 201, made.text
    code, spare = made.body["codes"]
    card = (await _new_cards(world, token, A, 1))[0]["card"]
    redeem = f"/v1/tenants/{A}/cards/{card}/redeem"
    ok = await world.call("POST", redeem, token, json_body={"code": code})
    assert (ok.status, ok.body["amount"], ok.body["card"]["balance"]) == (200, 500, 1500)
    twice = await world.call("POST", redeem, token, json_body={"code": code})
    assert (twice.status, twice.body["error"]["code"]) == (422, "voucher_already_redeemed")
    assert twice.body["error"]["field"] == "code"
    other = await world.token("operator", B)
    their_card = (await _new_cards(world, other, B, 1))[0]["card"]
    stolen = await world.call("POST", f"/v1/tenants/{B}/cards/{their_card}/redeem", other,
                              json_body={"code": spare})
    assert (stolen.status, stolen.body["error"]["code"]) == (422, "voucher_unknown")
    shown = await world.call("GET", f"/v1/tenants/{B}/cards/{their_card}", other)
    assert shown.body["balance"] == 1000


async def test_rate_plan_import_reports_bad_lines_and_looks_numbers_up(world: Api) -> None:
    admin = await world.token("admin", "*")
    text = "prefix,destination,rate\n44,UK,0.06\n447,UK mobile,0.12\nxx,bad,0.1\n49,DE,-1\n"
    got = await world.call("PUT", "/v1/rates/shop", admin, json_body={
        "settings": {"currency": "EUR"}, "csv": text})
    assert got.status == 200, got.text
    assert (got.body["rows"], got.body["rejected"]) == (2, 2)
    assert [e["line"] for e in got.body["errors"]] == [4, 5]
    looked = await world.call("GET", "/v1/rates/shop", await world.token("supervisor", A),
                              params={"lookup": "+447700900123"})
    assert looked.body["lookup"]["prefix"] == "447"
    assert looked.body["lookup"]["rate_per_minute"] == "0.12"
    before = await redis_state(world.redis)
    strict = await world.call("PUT", "/v1/rates/shop", admin, json_body={
        "settings": {"currency": "EUR"}, "csv": text, "strict": True})
    assert (strict.status, strict.body["error"]["code"]) == (422, "bad_rows")
    nothing = await world.call("PUT", "/v1/rates/shop", admin, json_body={
        "settings": {"currency": "EURO"}, "csv": text})
    assert (nothing.status, nothing.body["error"]["field"]) == (422, "settings")
    assert await redis_state(world.redis) == before
    refused = await world.call("PUT", "/v1/rates/shop", await world.token("operator", A),
                               json_body={"settings": {"currency": "EUR"}, "csv": text})
    assert refused.status == 403


async def test_cdr_export_in_three_formats_for_the_tokens_tenants(world: Api) -> None:
    token = await world.token("supervisor", A)
    as_json = await world.call("GET", "/v1/cdrs", token)
    assert [c["tenant"] for c in as_json.body["cdrs"]] == [A]
    as_csv = await world.call("GET", "/v1/cdrs", token, params={"format": "csv"})
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(r["tenant"], r["charge"]) for r in rows] == [(A, "5")]
    lines = await world.call("GET", "/v1/cdrs", await world.token("operator", "*"),
                             params={"format": "jsonl"})
    tenants = {json.loads(line)["tenant"] for line in lines.text.splitlines()}
    assert {A, B} <= tenants
    empty = await world.call("GET", "/v1/cdrs", token, params={"from": "1000", "to": "2000"})
    assert empty.body["cdrs"] == []
    wrong = await world.call("GET", "/v1/cdrs", token, params={"from": "2000", "to": "1000"})
    assert (wrong.status, wrong.body["error"]["field"]) == (422, "to")

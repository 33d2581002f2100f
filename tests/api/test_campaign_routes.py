"""Dialer campaigns and leads over /v1/: supervisors change a running campaign (logged
with who made it), bad changes change nothing, leads import reports bad rows by line."""

from __future__ import annotations

from dialer.campaign_store import CampaignStore
from gateway.campaigns.live_stats import write_stats
from tests.api.conftest import CAMPAIGN, A, Api, B, redis_state

ITEM = f"/v1/tenants/{A}/campaigns/{CAMPAIGN}"


async def test_a_supervisor_changes_pacing_and_the_change_is_logged_with_who(
        world: Api) -> None:
    token = await world.token("supervisor", A)
    token_id = token.split("_")[1]
    got = await world.call("PATCH", ITEM, token,
                           json_body={"max_ratio": 2.5, "max_abandon": 0.02, "paused": True})
    assert got.status == 200, got.text
    assert (got.body["max_ratio"], got.body["max_abandon"], got.body["paused"]) == (
        2.5, 0.02, True)
    stored = await CampaignStore(world.redis).require(A, CAMPAIGN)
    assert (stored.max_ratio, stored.abandon_target, stored.paused) == (2.5, 0.02, True)
    changes = {c["field"]: c for c in got.body["changes"]}
    assert set(changes) == {"max_ratio", "abandon_target", "paused"}
    assert all(c["by"] == f"api:{token_id}" for c in changes.values())
    assert (changes["max_ratio"]["old"], changes["max_ratio"]["new"]) == ("3.0", "2.5")
    resumed = await world.call("PATCH", ITEM, token, json_body={"paused": False})
    assert resumed.body["paused"] is False


async def test_a_bad_change_changes_nothing(world: Api) -> None:
    token = await world.token("supervisor", A)
    before = await redis_state(world.redis)
    for body, field in (({"max_ratio": 50}, "max_ratio"), ({"mode": "turbo"}, "mode"),
                        ({"max_ratio": 2, "max_abandon": 0.9}, "max_abandon"),
                        ({"pause": True}, "pause")):
        got = await world.call("PATCH", ITEM, token, json_body=body)
        assert got.status == 422, (body, got.text)
        assert got.body["error"]["field"] == field
    theirs = await world.call("PATCH", f"/v1/tenants/{B}/campaigns/{CAMPAIGN}", token,
                              json_body={"paused": True})
    assert (theirs.status, theirs.body["error"]["code"]) == (403, "tenant_forbidden")
    missing = await world.call("PATCH", f"/v1/tenants/{A}/campaigns/nope", token,
                               json_body={"paused": True})
    assert (missing.status, missing.body["error"]["code"]) == (404, "campaign_not_found")
    assert await redis_state(world.redis) == before


async def test_campaigns_show_the_pacing_gateways_live_figures(world: Api) -> None:
    await write_stats(world.redis, A, CAMPAIGN, {"campaign_id": CAMPAIGN, "dials": 12,
                                                  "abandon_rate": 0.01, "occupancy": 0.9})
    token = await world.token("supervisor", A)
    shown = await world.call("GET", ITEM, token)
    assert shown.body["live"]["dials"] == 12 and shown.body["leads"]["total"] == 1
    listed = await world.call("GET", "/v1/campaigns", token)
    assert [(c["tenant"], c["live"]["occupancy"]) for c in listed.body["campaigns"]] == [
        (A, 0.9)]


async def test_create_then_import_leads_with_errors_by_line(world: Api) -> None:
    token = await world.token("supervisor", A)
    made = await world.call("POST", f"/v1/tenants/{A}/campaigns", token, json_body={
        "campaign": "winter", "mode": "predictive", "queue": "sales", "region": "GB",
        "window": {"start": "10:00", "end": "18:00", "weekdays": [0, 1, 2, 3, 4]}})
    assert made.status == 201, made.text
    assert made.body["window"] == {"start": "10:00", "end": "18:00",
                                   "weekdays": [0, 1, 2, 3, 4]}
    again = await world.call("POST", f"/v1/tenants/{A}/campaigns", token,
                             json_body={"campaign": "winter", "queue": "sales"})
    assert (again.status, again.body["error"]["code"]) == (409, "campaign_exists")
    text = ("phone,name\n+442079460001,Ada\n,Nobody\nhello,Bob\n"
            "020 7946 0001,Ada again\n+442079460002,Cy\n")
    got = await world.call("POST", f"/v1/tenants/{A}/campaigns/winter/leads", token,
                           json_body={"csv": text})
    assert got.status == 200, got.text
    assert (got.body["rows"], got.body["imported"], got.body["merged"],
            got.body["rejected"]) == (5, 2, 1, 2)
    assert [(e["line"], e["reason"]) for e in got.body["errors"]] == [
        (3, "missing_number"), (4, "unparseable_number")]
    leads = await world.call("GET", f"/v1/tenants/{A}/campaigns/winter/leads", token)
    assert sorted(x["phone"] for x in leads.body["leads"]) == ["+442079460001",
                                                               "+442079460002"]
    # the duplicate was merged into the first lead, which keeps the newer columns
    assert {x["fields"]["name"] for x in leads.body["leads"]} == {"Ada again", "Cy"}
    no_phone = await world.call("POST", f"/v1/tenants/{A}/campaigns/winter/leads", token,
                                json_body={"csv": "name\nAda\n"})
    assert (no_phone.status, no_phone.body["error"]["code"]) == (422, "leads_unreadable")


async def test_a_lead_file_too_large_for_a_request_is_refused_whole(world: Api) -> None:
    token = await world.token("supervisor", A)
    before = await redis_state(world.redis)
    rows = "".join(f"+4420794{i:05d},x\n" for i in range(70_000))
    got = await world.call("POST", f"{ITEM}/leads", token,
                           json_body={"csv": "phone,name\n" + rows})
    assert (got.status, got.body["error"]["code"]) == (413, "body_too_large")
    assert await redis_state(world.redis) == before

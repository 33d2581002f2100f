"""The per-minute decision counts behind the wallboard chart."""

from __future__ import annotations

from gateway.wallboard import DecisionTally


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_decisions_are_counted_per_minute_and_per_tenant_for_the_last_hour() -> None:
    clock = Clock(1_800_000_000.0)  # 10:40:00 UTC, on a minute boundary
    tally = DecisionTally(minutes=60, clock=clock)
    tally.publish("call.authorized", {"result": "ALLOW", "reason": "ok"}, "acme")
    tally.publish("emergency", {"result": "ALLOW", "reason": "emergency"}, "acme")
    tally.publish("limit.denied", {"result": "DENY", "reason": "trunk_full"}, "globex")
    tally.publish("call.started", {"call_id": "1"}, "acme")  # not a decision
    clock.now += 61
    tally.publish("surcharge", {"result": "ALLOW", "reason": "surcharge"}, "globex")

    last = tally.per_minute(3)
    assert [(m.allowed, m.denied) for m in last] == [(0, 0), (2, 1), (1, 0)]
    assert last[1].denied_by_reason == {"trunk_full": 1}
    assert [m.minute for m in last] == [1_800_000_000 - 60, 1_800_000_000, 1_800_000_060]
    only_acme = tally.per_minute(3, tenants={"acme"})
    assert [(m.allowed, m.denied) for m in only_acme] == [(0, 0), (2, 0), (0, 0)]

    clock.now += 60 * 60  # an hour later the old minutes are gone
    tally.record("acme", "ALLOW")
    assert sum(m.allowed + m.denied for m in tally.per_minute(60)) == 1
    assert tally.tenants_seen() == {"acme"}


def test_a_clock_stepping_back_counts_in_the_newest_minute() -> None:
    clock = Clock(1_800_000_100.0)
    tally = DecisionTally(clock=clock)
    tally.record("acme", "ALLOW")
    clock.now -= 120
    tally.record("acme", "DENY", "tenant_limit")
    clock.now += 120
    assert [(m.allowed, m.denied) for m in tally.per_minute(1)] == [(1, 1)]

"""Rating: increments, minimum duration, grace, connection fee, bands, prefixes, taxes, CSV."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from prepaid.errors import BadInput
from prepaid.money import Tax, compute_taxes, parse_amount, parse_rate, with_taxes
from prepaid.rateplan_csv import parse_text
from prepaid.rating import PlanSettings, RateEntry, RatePlan, Tariff
from prepaid.timebands import BandRule, TimeBands

PARIS = "Europe/Paris"
EUR = PlanSettings(currency="EUR")


def tariff(
    rate: str = "0.60", increments: tuple[int, int] = (60, 60), fee: str = "0",
    min_duration: int = 0, grace: int = 0, bands: TimeBands | None = None,
    band_rates: tuple[tuple[str, str], ...] = (), taxes: tuple[Tax, ...] = (),
) -> Tariff:
    entry = RateEntry(
        prefix="44", destination="UK", rate=parse_rate(rate, "EUR"),
        band_rates=tuple((b, parse_rate(r, "EUR")) for b, r in band_rates),
        connection_fee=parse_amount(fee, "EUR"), initial=increments[0],
        subsequent=increments[1], min_duration=min_duration, grace=grace,
    )
    return Tariff("p", 1, "EUR", entry, bands or TimeBands(), taxes)


def paris_ms(y: int, mo: int, d: int, h: int, mi: int, s: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, s, tzinfo=ZoneInfo(PARIS)).timestamp() * 1000)


OFFPEAK = TimeBands(
    timezone=PARIS,
    default="peak",
    rules=(
        BandRule.parse("offpeak", "mon-fri", "19:00-08:00"),
        BandRule.parse("offpeak", "sat,sun", "00:00-24:00"),
    ),
)


@pytest.mark.parametrize(
    ("increments", "duration", "billable"),
    [
        ((60, 60), 1, 60), ((60, 60), 60, 60), ((60, 60), 61, 120), ((60, 60), 121, 180),
        ((30, 6), 1, 30), ((30, 6), 30, 30), ((30, 6), 31, 36), ((30, 6), 37, 42),
        ((1, 1), 1, 1), ((1, 1), 61, 61),
        ((60, 60), 0, 0),
    ],
)
def test_billing_increments(increments: tuple[int, int], duration: int, billable: int) -> None:
    assert tariff(increments=increments).billable(duration) == billable


def test_increment_prices_at_one_unit_per_second() -> None:
    t = tariff(increments=(30, 6))
    p = t.price(0, 31)
    assert (p.billable_s, p.net, p.total) == (36, 36, 36)


def test_minimum_duration_is_billed_at_least() -> None:
    assert tariff(increments=(1, 1), min_duration=30).billable(5) == 30
    assert tariff(increments=(1, 1), min_duration=30).billable(31) == 31
    # 30/6 with a 45 s minimum: the first step grows by whole 6 s increments to 48 s
    t = tariff(increments=(30, 6), min_duration=45)
    assert [t.billable(d) for d in (5, 48, 49)] == [48, 48, 54]


def test_grace_period_calls_are_free_even_of_the_connection_fee() -> None:
    t = tariff(increments=(1, 1), fee="0.10", grace=5)
    assert t.price(0, 4).total == 0
    p = t.price(0, 5)
    assert (p.billable_s, p.net) == (5, 10 + 5)


def test_connection_fee_is_added_once() -> None:
    p = tariff(fee="0.10").price(0, 61)  # 120 s at 0.60/min + 0.10
    assert p.net == 120 + 10


def test_fractional_rates_round_up_once_per_call() -> None:
    t = tariff(rate="0.15", increments=(1, 1))  # 0.25 cent per second
    assert t.price(0, 7).net == 2  # 1.75 -> 2, not 7 x 1
    assert t.price(0, 8).net == 2
    assert t.price(0, 9).net == 3


def test_call_crossing_peak_to_offpeak_is_charged_per_band() -> None:
    t = tariff(increments=(1, 1), bands=OFFPEAK, band_rates=(("offpeak", "0.30"),))
    answer = paris_ms(2027, 1, 15, 18, 59)  # Friday 18:59 Paris
    p = t.price(answer, 120)
    assert p.net == 60 * 1 + 60 // 2  # 60 s peak at 1/s, 60 s off-peak at 0.5/s


def test_increment_straddling_the_edge_is_split_by_second() -> None:
    t = tariff(increments=(60, 60), bands=OFFPEAK, band_rates=(("offpeak", "0.30"),))
    answer = paris_ms(2027, 1, 15, 18, 59, 30)
    p = t.price(answer, 61)  # billed 120 s: 30 s peak, 90 s off-peak
    assert p.billable_s == 120
    assert p.net == 30 + 45


def test_offpeak_to_peak_in_the_morning_and_day_of_week() -> None:
    t = tariff(increments=(1, 1), bands=OFFPEAK, band_rates=(("offpeak", "0.30"),))
    monday = paris_ms(2027, 1, 18, 7, 59, 30)
    assert t.price(monday, 60).net == 15 + 30
    saturday_noon = paris_ms(2027, 1, 16, 12, 0)
    friday_noon = paris_ms(2027, 1, 15, 12, 0)
    assert t.price(saturday_noon, 60).net == 30
    assert t.price(friday_noon, 60).net == 60
    # 07:30 on a Saturday is off-peak through the weekend rule, not the weekday night rule
    assert t.band_at(paris_ms(2027, 1, 16, 7, 30) / 1000) == "offpeak"


def test_bands_follow_the_plan_timezone() -> None:
    t = tariff(increments=(1, 1), bands=OFFPEAK, band_rates=(("offpeak", "0.30"),))
    # 18:30 UTC on a Friday is 19:30 in Paris: off-peak there
    ts = datetime(2027, 1, 15, 18, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    assert t.band_at(ts) == "offpeak"
    utc_bands = TimeBands(timezone="UTC", rules=OFFPEAK.rules)
    assert tariff(bands=utc_bands, band_rates=(("offpeak", "0.30"),)).band_at(ts) == "peak"


def test_longest_prefix_wins() -> None:
    plan = RatePlan("p", 1, EUR, [
        RateEntry("44", "UK", 1), RateEntry("4420", "London", 2), RateEntry("1", "USA", 3),
    ])
    lookup = plan.lookup
    assert lookup("442071234567").destination == "London"  # type: ignore[union-attr]
    assert lookup("+447911123456").destination == "UK"  # type: ignore[union-attr]
    assert lookup("12125551234").destination == "USA"  # type: ignore[union-attr]
    assert lookup("33123") is None
    assert lookup("44abc") is None
    assert lookup("") is None


def test_taxes_percent_half_up_and_fixed() -> None:
    taxes = (Tax("VAT", basis_points=2000), Tax("levy", fixed=5))
    assert [t.amount for t in compute_taxes(70, taxes)] == [14, 5]
    assert with_taxes(70, taxes) == 89
    assert Tax("x", basis_points=1250).on(12) == 2  # 1.5 rounds half up
    assert Tax("x", basis_points=1250).on(11) == 1  # 1.375
    assert with_taxes(0, taxes) == 0  # nothing charged, nothing taxed
    p = tariff(taxes=taxes).price(0, 60)
    assert (p.net, p.total) == (60, 60 + 12 + 5)


def test_a_tax_is_percent_or_fixed() -> None:
    with pytest.raises(BadInput):
        Tax("both", basis_points=100, fixed=1)
    with pytest.raises(BadInput):
        Tax("none")


def test_affordable_seconds_matches_the_price() -> None:
    t = tariff(increments=(30, 6), fee="0.05")
    secs = t.affordable_seconds(0, 100)
    assert t.price(0, secs).total <= 100 < t.price(0, secs + 1).total
    assert t.affordable_seconds(0, 34) == 0  # first step 30 + fee 5


def test_plan_settings_from_operator_config() -> None:
    s = PlanSettings.from_config({
        "currency": "EUR", "timezone": PARIS,
        "bands": [{"band": "offpeak", "days": "sat,sun", "hours": "00:00-24:00"}],
        "taxes": [{"name": "VAT", "percent": "19.6"}, {"name": "levy", "fixed": "0.05"}],
        "bundle": {"minutes": 100, "prefixes": ["33"], "rollover": True},
        "warn_to": "both", "low_balance": "1.00",
    })
    assert s.taxes == (Tax("VAT", basis_points=1960), Tax("levy", fixed=5))
    assert s.low_balance == 100 and s.warn_to == "both"
    assert PlanSettings.from_json(s.to_json()) == s
    with pytest.raises(BadInput):
        PlanSettings.from_config({"currency": "EUR", "timezone": "Mars/Olympus"})


CSV_WITH_ERRORS = """\
prefix,destination,rate,rate_offpeak,connection_fee,increments,min_duration,grace
44,UK,0.0123,0.01,0.05,30/6,0,3
4420,London,0.02,,0,60/60,30,0
44a,Bad prefix,0.01,,,,,
33,France,abc,,,,,
1,USA,0.01,,,0/60,,
# a comment line
49,Germany,0.001234567,,,,,
44,UK again,0.01,,,,,
39,Italy,-0.5,,,,,
7,Russia,0.05,,0.1,1/1,,x

34,Spain,0.04,,,1/1,,
"""


def test_bad_csv_rows_are_reported_by_line_and_good_rows_kept() -> None:
    settings = PlanSettings(currency="EUR", bands=OFFPEAK)
    res = parse_text(CSV_WITH_ERRORS, settings)
    assert [e.prefix for e in res.entries] == ["44", "4420", "34"]
    lines = {e.line: e.reason for e in res.errors}
    assert sorted(lines) == [4, 5, 6, 8, 9, 10, 11]
    assert "prefix" in lines[4]
    assert "decimal" in lines[5]
    assert "increments" in lines[6]
    assert "decimals" in lines[8]
    assert "line 2" in lines[9]  # duplicate of the first row
    assert "negative" in lines[10]
    assert "grace" in lines[11]
    uk = res.entries[0]
    assert (uk.rate, uk.rate_for("offpeak"), uk.connection_fee) == (12300, 10000, 5)
    assert (uk.initial, uk.subsequent, uk.grace) == (30, 6, 3)
    assert res.entries[1].min_duration == 30


def test_bad_csv_header_is_line_one() -> None:
    res = parse_text("prefix,price_per_call\n44,1\n", EUR)
    assert [(e.line, "unknown column" in e.reason) for e in res.errors] == [(1, True)]
    res = parse_text("prefix,rate,rate_night\n44,1,1\n", EUR)
    assert res.errors[0].line == 1 and "band" in res.errors[0].reason
    assert parse_text("", EUR).errors[0].line == 1

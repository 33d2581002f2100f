"""Rating: what a call to a destination costs, second by second, band by band.

Rules (the CDR and the live debit both follow them, so they always agree):

- Duration is counted in whole seconds, rounded up from the answer to the end
  (`ceil((end_ms - answer_ms) / 1000)`).
- Grace: a call shorter than `grace` seconds is not charged at all (no connection fee).
- Billable seconds: the first step is the initial increment, lengthened by subsequent
  increments until it covers the minimum duration; after it, subsequent increments. A call
  is billed to the first step boundary at or after its duration
  (60/60: 61 s -> 120 s; 30/6: 31 s -> 36 s; 1/1: exact).
- Bands: each billable second is rated at the band in effect at the instant it starts
  (answer + n seconds, in the plan's timezone). A call crossing a peak -> off-peak edge is
  therefore charged per band for the seconds in each; an increment straddling the edge is
  split the same way.
- Price: connection fee + ceil(sum of per-second rates / 60 / RATE_SCALE), then taxes
  (see prepaid.money). Seconds covered by a free-minute bundle are the call's first billable
  seconds and cost nothing; the connection fee is still due.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prepaid.control import WarnTarget, check_warn_target
from prepaid.errors import BadInput
from prepaid.money import (
    RATE_DIVISOR,
    Tax,
    TaxLine,
    ceil_div,
    check_currency,
    compute_taxes,
    parse_amount,
    parse_percent,
    with_taxes,
)
from prepaid.timebands import BandRule, TimeBands, check_band_name

_PREFIX_RE = re.compile(r"^[0-9]{1,20}$")
_INCR_RE = re.compile(r"^\s*(\d{1,5})\s*/\s*(\d{1,5})\s*$")
DEFAULT_MAX_CALL_S = 6 * 3600


def normalize_number(number: str) -> str | None:
    """Digits of a dialled number as plans store prefixes (E.164 without '+'); None when it
    has anything but digits after an optional leading '+'."""
    n = number.strip()
    if n.startswith("+"):
        n = n[1:]
    return n if n.isdigit() else None


def check_prefix(prefix: str) -> str:
    if not _PREFIX_RE.match(prefix):
        raise BadInput(f"prefix {prefix!r} must be 1-20 digits (E.164 without '+')")
    return prefix


def parse_increments(text: str) -> tuple[int, int]:
    m = _INCR_RE.match(text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise BadInput(
            f"increments {text!r} must be INITIAL/SUBSEQUENT seconds, e.g. 60/60 or 30/6"
        )
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True, slots=True)
class RateEntry:
    """One row of a rate plan. Rates are per minute in 1/RATE_SCALE minor units."""

    prefix: str
    destination: str
    rate: int
    band_rates: tuple[tuple[str, int], ...] = ()
    connection_fee: int = 0
    initial: int = 60
    subsequent: int = 60
    min_duration: int = 0
    grace: int = 0

    def rate_for(self, band: str) -> int:
        for name, rate in self.band_rates:
            if name == band:
                return rate
        return self.rate

    @property
    def max_rate(self) -> int:
        return max([self.rate, *(r for _, r in self.band_rates)])

    def to_json(self) -> list[Any]:
        return [
            self.prefix, self.destination, self.rate, [list(b) for b in self.band_rates],
            self.connection_fee, self.initial, self.subsequent, self.min_duration, self.grace,
        ]

    @classmethod
    def from_json(cls, raw: list[Any]) -> RateEntry:
        p, d, r, br, fee, ini, sub, mind, grace = raw
        return cls(
            p, d, int(r), tuple((str(b), int(v)) for b, v in br), int(fee), int(ini), int(sub),
            int(mind), int(grace),
        )


@dataclass(frozen=True)
class Bundle:
    """N free minutes per card cycle (a month from the activation day) to some prefixes."""

    minutes: int
    prefixes: tuple[str, ...] = ()  # empty: every destination of the plan
    rollover: bool = False
    rollover_cap_minutes: int | None = None  # None: at most one month's allowance

    def __post_init__(self) -> None:
        if self.minutes < 0 or (self.rollover_cap_minutes or 0) < 0:
            raise BadInput("bundle minutes must not be negative")
        for p in self.prefixes:
            check_prefix(p)

    @property
    def allowance_s(self) -> int:
        return self.minutes * 60

    @property
    def rollover_cap_s(self) -> int:
        """-1 when unused seconds do not roll over."""
        if not self.rollover:
            return -1
        cap = self.minutes if self.rollover_cap_minutes is None else self.rollover_cap_minutes
        return cap * 60

    def covers(self, number: str) -> bool:
        return not self.prefixes or any(number.startswith(p) for p in self.prefixes)

    def to_json(self) -> dict[str, Any]:
        return {
            "minutes": self.minutes, "prefixes": list(self.prefixes),
            "rollover": self.rollover, "rollover_cap_minutes": self.rollover_cap_minutes,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Bundle:
        cap = raw.get("rollover_cap_minutes")
        return cls(
            minutes=int(raw["minutes"]),
            prefixes=tuple(str(p) for p in raw.get("prefixes") or ()),
            rollover=bool(raw.get("rollover", False)),
            rollover_cap_minutes=None if cap is None else int(cap),
        )


@dataclass(frozen=True)
class PlanSettings:
    """Plan-wide settings; rows come from the CSV."""

    currency: str
    bands: TimeBands = field(default_factory=TimeBands)
    taxes: tuple[Tax, ...] = ()
    bundle: Bundle | None = None
    warn_seconds: int = 60
    warn_to: WarnTarget = "caller"
    low_balance: int = 0  # minor units; a debit leaving less publishes low_balance (0: never)

    def __post_init__(self) -> None:
        check_currency(self.currency)
        check_warn_target(self.warn_to)
        if self.warn_seconds < 0 or self.low_balance < 0:
            raise BadInput("warn_seconds and low_balance must not be negative")

    def to_json(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "bands": self.bands.to_json(),
            "taxes": [[t.name, t.basis_points, t.fixed] for t in self.taxes],
            "bundle": self.bundle.to_json() if self.bundle else None,
            "warn_seconds": self.warn_seconds,
            "warn_to": self.warn_to,
            "low_balance": self.low_balance,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PlanSettings:
        return cls(
            currency=str(raw["currency"]),
            bands=TimeBands.from_json(raw.get("bands") or {}),
            taxes=tuple(Tax(str(n), int(bp), int(fx)) for n, bp, fx in raw.get("taxes") or ()),
            bundle=Bundle.from_json(raw["bundle"]) if raw.get("bundle") else None,
            warn_seconds=int(raw.get("warn_seconds", 60)),
            warn_to=check_warn_target(str(raw.get("warn_to", "caller"))),
            low_balance=int(raw.get("low_balance", 0)),
        )

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> PlanSettings:
        """Operator form (TOML/JSON from the CLI): amounts in major units as strings.

        {"currency": "EUR", "timezone": "Europe/Paris", "default_band": "peak",
         "bands": [{"band": "offpeak", "days": "mon-fri", "hours": "19:00-08:00"}],
         "taxes": [{"name": "VAT", "percent": "20"}, {"name": "levy", "fixed": "0.05"}],
         "bundle": {"minutes": 100, "prefixes": ["33"], "rollover": true},
         "warn_seconds": 60, "warn_to": "both", "low_balance": "1.00"}
        """
        try:
            currency = check_currency(str(raw["currency"]))
        except KeyError:
            raise BadInput("plan settings need a currency") from None
        rules = tuple(
            BandRule.parse(str(b["band"]), str(b.get("days", "*")), str(b["hours"]))
            for b in raw.get("bands") or ()
        )
        taxes: list[Tax] = []
        for t in raw.get("taxes") or ():
            name = str(t.get("name", ""))
            if "percent" in t:
                bp = parse_percent(str(t["percent"]), f"tax {name} percent")
                taxes.append(Tax(name, basis_points=bp))
            elif "basis_points" in t:
                taxes.append(Tax(name, basis_points=int(t["basis_points"])))
            elif "fixed" in t:
                taxes.append(Tax(name, fixed=parse_amount(str(t["fixed"]), currency)))
            else:
                raise BadInput(f"tax {name!r} needs percent, basis_points or fixed")
        low = raw.get("low_balance")
        return cls(
            currency=currency,
            bands=TimeBands(
                timezone=str(raw.get("timezone", "UTC")),
                rules=rules,
                default=str(raw.get("default_band", "peak")),
            ),
            taxes=tuple(taxes),
            bundle=Bundle.from_json(raw["bundle"]) if raw.get("bundle") else None,
            warn_seconds=int(raw.get("warn_seconds", 60)),
            warn_to=check_warn_target(str(raw.get("warn_to", "caller"))),
            low_balance=parse_amount(str(low), currency) if low is not None else 0,
        )


@dataclass(frozen=True, slots=True)
class Price:
    billable_s: int
    free_s: int
    rate_seconds: int
    net: int
    taxes: tuple[TaxLine, ...]
    total: int


@dataclass(frozen=True)
class Tariff:
    """Everything needed to price one call, frozen at authorization: a plan re-imported
    mid-call does not change the price of calls already up."""

    plan: str
    plan_version: int
    currency: str
    entry: RateEntry
    bands: TimeBands
    taxes: tuple[Tax, ...] = ()
    _flat: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = self.bands.names
        flat = not self.bands.rules or all(
            self.entry.rate_for(b) == self.entry.rate for b in names
        )
        object.__setattr__(self, "_flat", flat)

    @property
    def first_step(self) -> int:
        e = self.entry
        if e.min_duration <= e.initial:
            return e.initial
        return e.initial + ceil_div(e.min_duration - e.initial, e.subsequent) * e.subsequent

    def next_boundary(self, paid_s: int) -> int:
        return self.first_step if paid_s <= 0 else paid_s + self.entry.subsequent

    def billable(self, duration_s: int) -> int:
        if duration_s <= 0 or duration_s < self.entry.grace:
            return 0
        first = self.first_step
        if duration_s <= first:
            return first
        sub = self.entry.subsequent
        return first + ceil_div(duration_s - first, sub) * sub

    def band_at(self, ts: float) -> str:
        return self.bands.band_at(ts)

    def rate_seconds(self, answer_ms: int, a: int, b: int) -> int:
        """Sum of per-minute rates of seconds a..b-1 after the answer (see module rules)."""
        if b <= a:
            return 0
        e = self.entry
        if self._flat:
            return (b - a) * e.rate
        total = 0
        for seg in self.bands.segments(answer_ms + a * 1000, answer_ms + b * 1000):
            lo = max(a, ceil_div(seg.start_ms - answer_ms, 1000))
            hi = min(b, ceil_div(seg.end_ms - answer_ms, 1000))
            if hi > lo:
                total += (hi - lo) * e.rate_for(seg.band)
        return total

    def net(self, rate_seconds: int) -> int:
        return self.entry.connection_fee + ceil_div(rate_seconds, RATE_DIVISOR)

    def total(self, net: int) -> int:
        return with_taxes(net, self.taxes)

    def price(self, answer_ms: int, duration_s: int, free_s: int = 0) -> Price:
        billable = self.billable(duration_s)
        if billable == 0:
            return Price(0, 0, 0, 0, compute_taxes(0, self.taxes), 0)
        free = max(0, min(free_s, billable))
        rs = self.rate_seconds(answer_ms, free, billable)
        net = self.net(rs)
        return Price(billable, free, rs, net, compute_taxes(net, self.taxes), self.total(net))

    def increment_allowance(self) -> int:
        """Most a card may end below zero because of this call: one subsequent increment at
        the dearest band, with taxes (+1 per tax for rounding)."""
        e = self.entry
        net = ceil_div(e.subsequent * e.max_rate, RATE_DIVISOR)
        return with_taxes(net, self.taxes) + len(self.taxes)

    def seconds_for(self, money: int, at_ts: float) -> int:
        """Roughly how many seconds `money` buys at the band rate of `at_ts` (for warnings):
        whole subsequent increments, taxes included."""
        rate = self.entry.rate if self._flat else self.entry.rate_for(self.band_at(at_ts))
        if money <= 0:
            return 0
        if rate <= 0:
            return DEFAULT_MAX_CALL_S
        sub = self.entry.subsequent
        inc_cost = max(1, self.total(ceil_div(sub * rate, RATE_DIVISOR)))
        return (money // inc_cost) * sub

    def affordable_seconds(
        self,
        answer_ms: int,
        balance: int,
        bundle_left_s: int = 0,
        cap_s: int = DEFAULT_MAX_CALL_S,
    ) -> int:
        """The longest call (a step boundary) that `balance` and free bundle seconds pay for,
        as the live debit would charge it; 0 when even the first step is unaffordable."""
        first, sub = self.first_step, self.entry.subsequent
        free_end = 0
        if bundle_left_s >= first:
            free_end = first + (bundle_left_s - first) // sub * sub
        if free_end >= cap_s:
            return free_end if self.total(self.net(0)) <= balance else 0
        base = free_end if free_end else first

        def cost(end: int) -> int:
            return self.total(self.net(self.rate_seconds(answer_ms, free_end, end)))

        if cost(base) > balance:
            return 0
        lo, hi = 0, max(0, (cap_s - base) // sub)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if cost(base + mid * sub) <= balance:
                lo = mid
            else:
                hi = mid - 1
        return base + lo * sub

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "version": self.plan_version,
            "currency": self.currency,
            "entry": self.entry.to_json(),
            "bands": self.bands.to_json(),
            "taxes": [[t.name, t.basis_points, t.fixed] for t in self.taxes],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Tariff:
        return cls(
            plan=str(raw["plan"]),
            plan_version=int(raw["version"]),
            currency=str(raw["currency"]),
            entry=RateEntry.from_json(raw["entry"]),
            bands=TimeBands.from_json(raw["bands"]),
            taxes=tuple(Tax(str(n), int(bp), int(fx)) for n, bp, fx in raw["taxes"]),
        )


class RatePlan:
    """A plan loaded in memory: a dict per prefix, searched longest first (a few dict
    look-ups per call, microseconds even with 100,000 prefixes)."""

    def __init__(
        self, name: str, version: int, settings: PlanSettings, entries: Iterable[RateEntry]
    ) -> None:
        self.name = name
        self.version = version
        self.settings = settings
        self.entries: dict[str, RateEntry] = {e.prefix: e for e in entries}
        self.max_len = max((len(p) for p in self.entries), default=0)
        for e in self.entries.values():
            for band, _ in e.band_rates:
                check_band_name(band)

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, number: str) -> RateEntry | None:
        digits = normalize_number(number)
        if not digits:
            return None
        get = self.entries.get
        for n in range(min(len(digits), self.max_len), 0, -1):
            e = get(digits[:n])
            if e is not None:
                return e
        return None

    def tariff(self, entry: RateEntry) -> Tariff:
        s = self.settings
        return Tariff(self.name, self.version, s.currency, entry, s.bands, s.taxes)

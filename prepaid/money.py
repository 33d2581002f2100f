"""Money: integer minor units plus an ISO 4217 currency code, and taxes on charges.

Rates are finer than a minor unit (wholesale rates such as 0.0123 per minute are common),
so a per-minute rate is held as an integer count of 1/10,000 of a minor unit
(`RATE_SCALE`). A call's price is rounded once, up, to a whole minor unit
(`ceil(sum of second-by-second rate / 60 / RATE_SCALE)`): rounding per increment would
overcharge short increments, rounding down would give money away.

Taxes, when a plan lists them, are computed on the net charge of a call, each one
separately (never a tax on a tax):

- a percentage in basis points (2000 = 20.00 %) is rounded half-up to a minor unit:
  `(net * bp + 5000) // 10000`;
- a fixed amount (minor units) is added once per call whose net charge is above zero.

The debit script (`debit.lua`) repeats exactly this arithmetic; tests compare the two.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from prepaid.errors import BadInput

RATE_SCALE = 10_000  # a per-minute rate is held in 1/RATE_SCALE of a minor unit
RATE_DIVISOR = 60 * RATE_SCALE  # sum over seconds of rate -> minor units

_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
# ISO 4217 minor-unit exponents that are not 2.
_EXPONENT = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0, "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}


def check_currency(code: str) -> str:
    if not isinstance(code, str) or not _CURRENCY_RE.match(code):
        raise BadInput(f"currency {code!r} must be a three-letter ISO 4217 code such as EUR")
    return code


def exponent(currency: str) -> int:
    return _EXPONENT.get(check_currency(currency), 2)


def _decimal(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise BadInput(f"{what} {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise BadInput(f"{what} {text!r} is not a decimal number")
    if value < 0:
        raise BadInput(f"{what} {text!r} is negative")
    return value


def parse_amount(text: str, currency: str, what: str = "amount") -> int:
    """'12.50' EUR -> 1250 minor units; refuses more decimals than the currency has."""
    scaled = _decimal(text, what).scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise BadInput(f"{what} {text!r} has more decimals than {currency} allows")
    return int(scaled)


def parse_rate(text: str, currency: str, what: str = "rate") -> int:
    """A per-minute rate in major units -> 1/RATE_SCALE minor units ('0.0123' EUR -> 12300)."""
    scaled = _decimal(text, what).scaleb(exponent(currency) + 4)
    if scaled != scaled.to_integral_value():
        raise BadInput(f"{what} {text!r} has too many decimals (at most {exponent(currency) + 4})")
    return int(scaled)


def parse_percent(text: str, what: str = "percent") -> int:
    """'20' -> 2000 basis points, '5.5' -> 550; at most two decimals."""
    scaled = _decimal(text, what).scaleb(2)
    if scaled != scaled.to_integral_value():
        raise BadInput(f"{what} {text!r} has more than two decimals")
    return int(scaled)


def format_amount(minor: int, currency: str) -> str:
    exp = exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}" if exp else f"{sign}{whole}"


def format_rate(rate: int, currency: str) -> str:
    exp = exponent(currency) + 4
    whole, frac = divmod(rate, 10**exp)
    return f"{whole}.{frac:0{exp}d}".rstrip("0").rstrip(".") if frac else str(whole)


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


@dataclass(frozen=True, slots=True)
class Tax:
    """One tax of a plan: a percentage (basis points) or a fixed amount per charged call."""

    name: str
    basis_points: int = 0
    fixed: int = 0

    def __post_init__(self) -> None:
        if not self.name:
            raise BadInput("a tax needs a name")
        if self.basis_points < 0 or self.fixed < 0:
            raise BadInput(f"tax {self.name!r} must not be negative")
        if bool(self.basis_points) == bool(self.fixed):
            raise BadInput(f"tax {self.name!r} needs exactly one of basis_points or fixed")

    def on(self, net: int) -> int:
        if net <= 0:
            return 0
        if self.basis_points:
            return (net * self.basis_points + 5000) // 10000
        return self.fixed


@dataclass(frozen=True, slots=True)
class TaxLine:
    name: str
    amount: int


def compute_taxes(net: int, taxes: Iterable[Tax]) -> tuple[TaxLine, ...]:
    return tuple(TaxLine(t.name, t.on(net)) for t in taxes)


def with_taxes(net: int, taxes: Iterable[Tax]) -> int:
    return net + sum(t.on(net) for t in taxes)

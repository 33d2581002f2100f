"""Which dialled numbers are emergency calls (invariant 3: never refused, never charged).

Missing an emergency call is the dangerous mistake; treating an odd dial string as one only
lets that call bypass limits (it is still counted) and charging. So matching is liberal
about what may come *before* the number and strict about the number itself: after
normalising, some reading of the dial string must equal a configured number exactly
(`1120`, `+19115551234`, `4420799999` never match).

Normalisation, in order, each step optional (all combinations are tried):

1. clean: drop a `tel:`/`sip:`/`sips:` scheme and anything from `@` or `;`, `%2B` -> `+`,
   spaces and `-` `.` `(` `)` `/`, and trailing `#`;
2. a caller-ID service code at the start: `*67`, `*82`, `*31#`, `#31#` (any `*NN`/`*NNN`);
3. one outside-line prefix of a PBX (default `9` and `0`: `9911`, `9999`, `0112`);
4. an international part: `+` or an international prefix (default `00`, `011`), with or
   without a country calling code after it (`+44999`, `0049112`, `011 1 911`, `+112`);
5. one national trunk prefix `0` after a country code (`+44 (0) 999`).

Sites where a leading 9 or 0 is never an outside line, and numbers such as `9000` or
`0110` are ordinary destinations, can pass `outside_line_prefixes=()`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers

_SCHEME_RE = re.compile(r"^(?:tel|sips?):", re.IGNORECASE)
_SEPARATORS_RE = re.compile(r"[\s\-.()/]")
_SERVICE_CODE_RES = (re.compile(r"^[*#]31#"), re.compile(r"^\*\d\d"), re.compile(r"^\*\d\d\d"))
_NUMBER_RE = re.compile(r"^\d{2,8}$")
_DIAL_RE = re.compile(r"^[0-9+*#]{1,40}$")


def _country_codes() -> frozenset[str]:
    return frozenset(str(cc) for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


class EmergencyNumbers:
    def __init__(
        self,
        numbers: Iterable[str],
        *,
        outside_line_prefixes: Iterable[str] = ("9", "0"),
        international_prefixes: Iterable[str] = ("00", "011"),
    ) -> None:
        self.numbers = frozenset(str(n).strip() for n in numbers)
        for n in self.numbers:
            if not _NUMBER_RE.match(n):
                raise ValueError(f"emergency number {n!r} must be 2 to 8 digits")
        self._outside = tuple(outside_line_prefixes)
        self._international = tuple(international_prefixes)
        for p in (*self._outside, *self._international):
            if not p.isdigit():
                raise ValueError(f"dialling prefix {p!r} must be digits")
        self._country_codes = _country_codes()
        longest = max((len(n) for n in self.numbers), default=0)
        # service code + outside line + international prefix + country code + trunk 0
        self._max_len = longest + 4 + max((len(p) for p in self._outside), default=0) + 4 + 3 + 1

    def matches(self, dialled: str) -> bool:
        if not self.numbers or not dialled:
            return False
        cleaned = dialled if dialled.isdigit() else clean(dialled)
        if cleaned is None or len(cleaned) > self._max_len:
            return False
        # every reading is a suffix of the cleaned string: most numbers stop here
        if not any(cleaned.endswith(n) for n in self.numbers):
            return False
        return not self.numbers.isdisjoint(self.readings(cleaned))

    def readings(self, cleaned: str) -> set[str]:
        """Every way to read a cleaned dial string as a number dialled in this site."""
        out = {cleaned}
        for code in _SERVICE_CODE_RES:
            m = code.match(cleaned)
            if m:
                out.add(cleaned[m.end():])
        for v in list(out):
            for p in self._outside:
                if v.startswith(p):
                    out.add(v[len(p):])
        for v in list(out):
            rests = [v[1:]] if v.startswith("+") else []
            rests += [v[len(p):] for p in self._international if v.startswith(p)]
            for rest in rests:
                out.add(rest)
                for national in self._after_country_code(rest):
                    out.add(national)
                    if national.startswith("0"):
                        out.add(national[1:])
        out.discard("")
        return out

    def _after_country_code(self, rest: str) -> list[str]:
        return [rest[n:] for n in (1, 2, 3) if rest[:n] in self._country_codes]


def clean(dialled: str) -> str | None:
    """The dial string reduced to digits, `+`, `*`, `#`; None if something else is left."""
    s = dialled.strip()
    s = _SCHEME_RE.sub("", s)
    s = s.split("@", 1)[0].split(";", 1)[0]
    s = s.replace("%2B", "+").replace("%2b", "+")
    s = _SEPARATORS_RE.sub("", s).rstrip("#")
    return s if _DIAL_RE.match(s) else None

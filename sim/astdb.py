"""Asterisk's internal database (AstDB), read and written by the dialplan's DB() function
and by the AMI actions DBGet, DBPut and DBDel (sim/astdb_actions.py).

Only what a gateway uses: one flat store of family/key -> value. The gateway's example `h`
extension records when a card call ended (`Set(DB(callgate_end/${CALLGATE_LEASE})=...)`),
so a gateway that was down at that moment can still charge the real duration.
"""

from __future__ import annotations


class AstDb:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], str] = {}

    def get(self, family: str, key: str) -> str | None:
        return self._rows.get((family, key))

    def put(self, family: str, key: str, value: str) -> None:
        self._rows[(family, key)] = value

    def delete(self, family: str, key: str) -> bool:
        return self._rows.pop((family, key), None) is not None

    def family(self, family: str) -> dict[str, str]:
        return {k: v for (f, k), v in self._rows.items() if f == family}


def split_db_arg(arg: str) -> tuple[str, str] | None:
    """`DB(family/key)`'s argument; None when either part is missing (Asterisk refuses it
    with "DB requires an argument, DB(<family>/<key>)" and writes nothing)."""
    family, sep, key = arg.partition("/")
    if not sep or not family or not key:
        return None
    return family, key

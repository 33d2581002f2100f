"""Static checks of every Lua script of limits/, prepaid/ and gateway/: its header
documents the KEYS and ARGV it reads, it builds no key itself, the key patterns in its
header share one hash tag, and it is one of the scripts the cluster tests run through
the services' own code (redis-py refuses a cross-slot EVALSHA on a cluster, so running
each script path there is the real check that its keys share one slot)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.scaleout.conftest import lua_files, script_name
from tests.scaleout.test_event_owner import EVENT_OWNER_SCRIPTS
from tests.scaleout.test_limits_cluster import LIMIT_SCRIPTS
from tests.scaleout.test_prepaid_cluster import PREPAID_SCRIPTS
from tests.scaleout.test_prepaid_fence import FENCE_SCRIPTS

_INDEX_RE = re.compile(r"\b(KEYS|ARGV)\[(\d+)(\.\.)?\]")
_TAG_RE = re.compile(r"\{[a-z]+(?::[A-Za-z]+)?\}")


@dataclass(frozen=True)
class Script:
    name: str
    header: list[str]
    body: list[str]

    @classmethod
    def read(cls, path: Path) -> Script:
        lines = path.read_text(encoding="utf-8").splitlines()
        n = 0
        while n < len(lines) and (lines[n].startswith("--") or not lines[n].strip()):
            n += 1
        code = [ln.split("--", 1)[0] for ln in lines[n:]]
        return cls(script_name(path), lines[:n], code)

    def documented(self) -> tuple[set[tuple[str, int]], dict[str, int]]:
        """Indices the header names, and where an open range (`ARGV[4..]`, `ARGV[10],
        ARGV[11], ...`) starts."""
        exact: set[tuple[str, int]] = set()
        open_from: dict[str, int] = {}
        for line in self.header:
            for what, idx, dots in _INDEX_RE.findall(line):
                exact.add((what, int(idx)))
                if dots or line.rstrip().endswith("..."):
                    open_from[what] = min(open_from.get(what, 10**6), int(idx))
        return exact, open_from

    def used(self) -> set[tuple[str, int]]:
        return {(w, int(i)) for line in self.body for w, i, _ in _INDEX_RE.findall(line)}


SCRIPTS = [Script.read(p) for p in lua_files()]


def test_the_scripts_are_found() -> None:
    names = {s.name for s in SCRIPTS}
    assert {"limits/acquire.lua", "prepaid/debit.lua"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_header_documents_every_key_and_argument_the_script_reads(script: Script) -> None:
    exact, open_from = script.documented()
    undocumented = sorted(
        f"{w}[{i}]" for w, i in script.used()
        if (w, i) not in exact and not i >= open_from.get(w, 10**6)
    )
    assert undocumented == [], f"{script.name}: header misses {undocumented}"
    if any(w == "KEYS" for w, _ in script.used()):
        assert ("KEYS", 1) in exact, f"{script.name}: no KEYS[1] line in the header"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_no_script_builds_a_key_of_its_own(script: Script) -> None:
    """A key made inside a script is invisible to the cluster router: all keys come in
    KEYS."""
    built = [ln.strip() for ln in script.body if "callgate:" in ln or "{site:" in ln
             or "{card:" in ln]
    assert built == [], f"{script.name} builds keys: {built}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_key_patterns_in_a_header_share_one_hash_tag(script: Script) -> None:
    tags = {t for line in script.header if "KEYS[" in line for t in _TAG_RE.findall(line)}
    assert len(tags) <= 1, f"{script.name}: KEYS of several slots {sorted(tags)}"


def test_every_script_is_run_on_the_cluster_by_a_test() -> None:
    """The tours in test_limits_cluster.py and test_prepaid_cluster.py assert they ran
    these scripts with keys of one slot; a new script must join one of them."""
    ran = LIMIT_SCRIPTS | PREPAID_SCRIPTS | EVENT_OWNER_SCRIPTS | FENCE_SCRIPTS
    assert {s.name for s in SCRIPTS} - ran == set()

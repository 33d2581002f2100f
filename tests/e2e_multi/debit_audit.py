"""What the gateways' logs say they debited: each applied debit is one debug line
`prepaid_debited` (session, seq, epoch) in the log of the gateway whose debit Redis
applied. An increment debited twice would show as one (session, seq) applied twice (by
two gateways, or by one after a restart); a line lost with a kill -9 can only hide one,
never invent one. Shared by tests/e2e_multi and bench/soak.py."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DebitAudit:
    applied: Counter[tuple[str, int]] = field(default_factory=Counter)
    epochs: dict[str, set[int]] = field(default_factory=dict)  # session -> epochs seen

    @classmethod
    def from_logs(cls, paths: Iterable[Path]) -> DebitAudit:
        audit = cls()
        for path in paths:
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                if '"prepaid_debited"' not in line or not line.startswith("{"):
                    continue
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("event") != "prepaid_debited":
                    continue
                sid, seq = str(e["session"]), int(e["seq"])
                audit.applied[(sid, seq)] += 1
                audit.epochs.setdefault(sid, set()).add(int(e.get("epoch", 0)))
        return audit

    @property
    def double_debits(self) -> int:
        """Debits applied beyond the first for one (session, seq)."""
        return sum(n - 1 for n in self.applied.values() if n > 1)

    def seqs(self, session: str) -> list[int]:
        return sorted(seq for (sid, seq) in self.applied if sid == session)

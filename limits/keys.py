"""Redis key layout of one site. Every key carries the hash tag `{site:NAME}`, so all of a
site's keys live in one Redis Cluster slot and each Lua script touches one slot only.

| key                                | type | holds                                            |
|------------------------------------|------|--------------------------------------------------|
| `callgate:{site:S}:config`         | hash | what operators set, one field each:              |
|                                    |      | `limit:<scope>` limit (absent: unlimited)        |
|                                    |      | `hard:<scope>` hard maximum (surcharge policy)   |
|                                    |      | `cps:<trunk scope>` calls per second             |
|                                    |      | `parent:<tenant>` reseller                       |
|                                    |      | `policy:<tenant>` `refuse` or `surcharge`        |
| `callgate:{site:S}:bucket`         | hash | `<trunk scope>/tokens`, `<trunk scope>/at` (ms)  |
| `callgate:{site:S}:used`           | hash | scope id -> calls holding it                     |
| `callgate:{site:S}:surcharged`     | hash | scope id, `tenant/<T>` -> surcharged calls       |
| `callgate:{site:S}:deadlines`      | zset | lease id -> deadline (epoch ms)                  |
| `callgate:{site:S}:released`       | zset | lease id -> release time (recent tombstones)     |
| `callgate:{site:S}:holdings`       | hash | lease id -> `scope ...|surcharged scope ...`     |
| `callgate:{site:S}:lease:<id>`     | hash | tenant status meta created                       |
| `callgate:{site:S}:failopen`       | hash | lease id -> JSON record of a grant made offline  |
"""

from __future__ import annotations

from dataclasses import dataclass, field

from limits.scopes import check_name


@dataclass(frozen=True)
class SiteKeys:
    site: str
    prefix: str = field(init=False)

    def __post_init__(self) -> None:
        check_name("site", self.site)
        object.__setattr__(self, "prefix", f"callgate:{{site:{self.site}}}:")

    def _k(self, name: str) -> str:
        return self.prefix + name

    @property
    def config(self) -> str:
        return self._k("config")

    @property
    def bucket(self) -> str:
        return self._k("bucket")

    @property
    def used(self) -> str:
        return self._k("used")

    @property
    def surcharged(self) -> str:
        return self._k("surcharged")

    @property
    def deadlines(self) -> str:
        return self._k("deadlines")

    @property
    def released(self) -> str:
        return self._k("released")

    @property
    def holdings(self) -> str:
        return self._k("holdings")

    @property
    def failopen(self) -> str:
        return self._k("failopen")

    def lease(self, lease_id: str) -> str:
        """Fields: tenant, status (ok|surcharge|emergency|restored), meta
        ('call_id origin flag...', '-' for empty), created (epoch ms). What the lease holds
        is its field in `holdings`; a lease exists while it has one."""
        return self._k("lease:" + lease_id)

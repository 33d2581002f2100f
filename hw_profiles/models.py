"""What a loaded hardware profile is: one frozen dataclass per kind, and the set of them.

`capacity` is the number of calls the device can carry at once, the figure the limits
package turns into a counter: call appearances of a desk phone, ports of an analogue
gateway, GSM channels, B-channels of a PRI span, the channel cap of a SIP trunk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

ProfileKind = Literal[
    "desk_phone", "fxo_gateway", "fxs_gateway", "gsm_gateway", "pri_span", "sip_trunk"
]
KINDS: tuple[ProfileKind, ...] = (
    "desk_phone", "fxo_gateway", "fxs_gateway", "gsm_gateway", "pri_span", "sip_trunk"
)
DEFAULT_DESK_PHONE = "default"


@dataclass(frozen=True)
class ProfileError:
    """One problem in one profile file, phrased for the operator who wrote it."""

    path: Path
    key: str
    reason: str

    def __str__(self) -> str:
        if self.key:
            return f"{self.path}: {self.key}: {self.reason}"
        return f"{self.path}: {self.reason}"


class ProfileLoadError(Exception):
    """Profiles could not be loaded; `errors` lists every problem found, not just the first."""

    def __init__(self, errors: list[ProfileError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass(frozen=True, kw_only=True)
class Profile:
    kind: ClassVar[ProfileKind]

    name: str
    vendor: str
    model: str
    origin: Path
    sources: tuple[str, ...] = ()
    notes: str = ""

    @property
    def capacity(self) -> int:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class DeskPhoneProfile(Profile):
    kind: ClassVar[ProfileKind] = "desk_phone"

    # None only for the `default` profile, which matches whatever nothing else does.
    user_agent: re.Pattern[str] | None
    sip_accounts: int
    simultaneous_calls: int
    line_keys: int
    # (header name, value) pairs that make the phone answer an intercom/click-to-call leg.
    auto_answer_headers: tuple[tuple[str, str], ...] = ()

    @property
    def capacity(self) -> int:
        return self.simultaneous_calls


@dataclass(frozen=True, kw_only=True)
class FxoGatewayProfile(Profile):
    kind: ClassVar[ProfileKind] = "fxo_gateway"
    ports: int

    @property
    def capacity(self) -> int:
        return self.ports


@dataclass(frozen=True, kw_only=True)
class FxsGatewayProfile(Profile):
    kind: ClassVar[ProfileKind] = "fxs_gateway"
    ports: int

    @property
    def capacity(self) -> int:
        return self.ports


@dataclass(frozen=True, kw_only=True)
class GsmGatewayProfile(Profile):
    kind: ClassVar[ProfileKind] = "gsm_gateway"
    # A GSM module carries one call at a time, so channels = concurrent calls.
    channels: int
    sim_slots: int

    @property
    def capacity(self) -> int:
        return self.channels


@dataclass(frozen=True, kw_only=True)
class PriSpanProfile(Profile):
    kind: ClassVar[ProfileKind] = "pri_span"
    span_type: Literal["T1", "E1"]
    spans: int
    channels: int

    @property
    def capacity(self) -> int:
        return self.channels


@dataclass(frozen=True, kw_only=True)
class SipTrunkProfile(Profile):
    kind: ClassVar[ProfileKind] = "sip_trunk"
    max_channels: int
    calls_per_second: float

    @property
    def capacity(self) -> int:
        return self.max_channels


AnyProfile = (
    DeskPhoneProfile
    | FxoGatewayProfile
    | FxsGatewayProfile
    | GsmGatewayProfile
    | PriSpanProfile
    | SipTrunkProfile
)


@dataclass(frozen=True)
class ProfileOverride:
    """An operator profile replaced one loaded earlier under the same name."""

    name: str
    replaced: Path
    by: Path


@dataclass(frozen=True)
class ProfileSet:
    """Every loaded profile by name, plus the order in which desk phones are tried on a UA.

    Operator profiles come first in `match_order` (the last directory given first), so an
    operator can teach the gateway a phone, or a firmware, that a shipped pattern gets wrong.
    """

    profiles: Mapping[str, AnyProfile]
    match_order: tuple[DeskPhoneProfile, ...]
    default_desk_phone: DeskPhoneProfile
    overrides: tuple[ProfileOverride, ...] = field(default=())

    def get(self, name: str) -> AnyProfile | None:
        return self.profiles.get(name)

    def names(self) -> list[str]:
        return sorted(self.profiles)

    def of_kind(self, kind: ProfileKind) -> list[AnyProfile]:
        return [self.profiles[n] for n in self.names() if self.profiles[n].kind == kind]

    def match_user_agent(self, user_agent: str) -> DeskPhoneProfile:
        """First desk phone whose pattern matches, else the `default` profile.

        The caller can tell the two apart with `profile is profile_set.default_desk_phone`
        and is the one to warn about an unknown phone (once per UA, not once per REGISTER).
        """
        for profile in self.match_order:
            if profile.user_agent is not None and profile.user_agent.search(user_agent):
                return profile
        return self.default_desk_phone

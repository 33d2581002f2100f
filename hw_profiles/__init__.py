"""Telephony hardware profiles: YAML data about phones, gateways, spans and trunks, and
the loader/validator that turns it into frozen dataclasses. No logic beyond loading."""

from hw_profiles.loader import SHIPPED_DIR, load_profiles, validate_dir
from hw_profiles.models import (
    DEFAULT_DESK_PHONE,
    KINDS,
    AnyProfile,
    DeskPhoneProfile,
    FxoGatewayProfile,
    FxsGatewayProfile,
    GsmGatewayProfile,
    PriSpanProfile,
    Profile,
    ProfileError,
    ProfileKind,
    ProfileLoadError,
    ProfileOverride,
    ProfileSet,
    SipTrunkProfile,
)

__all__ = [
    "DEFAULT_DESK_PHONE",
    "KINDS",
    "SHIPPED_DIR",
    "AnyProfile",
    "DeskPhoneProfile",
    "FxoGatewayProfile",
    "FxsGatewayProfile",
    "GsmGatewayProfile",
    "PriSpanProfile",
    "Profile",
    "ProfileError",
    "ProfileKind",
    "ProfileLoadError",
    "ProfileOverride",
    "ProfileSet",
    "SipTrunkProfile",
    "load_profiles",
    "validate_dir",
]

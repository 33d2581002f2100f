"""Concurrent-call limits: scopes, atomic acquire/release in Redis, leases, emergency
override, overflow policy and reconciliation. Talks Redis only, never AMI."""

from limits.emergency import EmergencyNumbers
from limits.errors import BackendUnavailable, InvalidLimit
from limits.journal import FailOpenJournal, JournalEntry
from limits.keys import SiteKeys
from limits.model import (
    BackendPolicy,
    CallRequest,
    CounterFix,
    Decision,
    Direction,
    InvalidRequest,
    LeaseInfo,
    OverflowPolicy,
    ReconcileReport,
    RenewReport,
    ScopeStatus,
    TenantStatus,
)
from limits.reasons import CAUSES, Reason, Result, cause_for
from limits.scopes import InvalidName, ScopeKind, ScopeRef
from limits.service import LimitsService, ScriptCall
from limits.settings import LimitSettings

__all__ = [
    "CAUSES",
    "BackendPolicy",
    "BackendUnavailable",
    "CallRequest",
    "CounterFix",
    "Decision",
    "Direction",
    "EmergencyNumbers",
    "FailOpenJournal",
    "InvalidLimit",
    "InvalidName",
    "InvalidRequest",
    "JournalEntry",
    "LeaseInfo",
    "LimitSettings",
    "LimitsService",
    "OverflowPolicy",
    "Reason",
    "ReconcileReport",
    "RenewReport",
    "Result",
    "ScopeKind",
    "ScopeRef",
    "ScopeStatus",
    "ScriptCall",
    "SiteKeys",
    "TenantStatus",
    "cause_for",
]

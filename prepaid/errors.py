"""Errors raised by prepaid services; each carries a message fit for an operator."""

from __future__ import annotations


class PrepaidError(Exception):
    """Base of prepaid errors."""


class BadInput(PrepaidError, ValueError):
    """A value given by an operator or a caller is malformed (clear message, no traceback)."""


class CardNotFound(PrepaidError, LookupError):
    def __init__(self, card_id: str) -> None:
        super().__init__(f"card {card_id!r} not found")
        self.card_id = card_id


class CardStateError(PrepaidError):
    """An operation is not allowed in the card's current life-cycle state."""


class CurrencyMismatch(PrepaidError):
    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"currency {got} does not match the account's {expected}")


class PlanNotFound(PrepaidError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"rate plan {name!r} not found")
        self.name = name


class SessionNotFound(PrepaidError, LookupError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"prepaid session {session_id!r} not found")
        self.session_id = session_id

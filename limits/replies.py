"""Reading Redis replies whatever the client's `decode_responses` setting."""

from __future__ import annotations

from typing import Any


def text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


def opt_int(value: Any) -> int | None:
    return None if value is None else int(text(value))


def opt_float(value: Any) -> float | None:
    return None if value is None else float(text(value))


def as_int(value: Any) -> int:
    return 0 if value is None else int(text(value))


def str_dict(flat: Any) -> dict[str, str]:
    return {text(k): text(v) for k, v in dict(flat).items()}

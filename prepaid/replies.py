"""Decoding Redis replies whether or not the client was made with decode_responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def as_int(value: Any, default: int = 0) -> int:
    if value is None or value == b"" or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def str_dict(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}

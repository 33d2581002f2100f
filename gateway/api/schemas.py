"""JSON Schemas shared by several resources (names, counts, the limits views)."""

from __future__ import annotations

from typing import Any

from gateway.api.routes import Param
from limits.scopes import NAME_RE

NAME: dict[str, Any] = {
    "type": "string", "pattern": NAME_RE.pattern,
    "description": "1-64 of letters, digits and _ . : @ + * # -",
}
COUNT: dict[str, Any] = {
    "type": ["integer", "null"], "minimum": 0, "maximum": 10_000_000,
    "description": "a whole number >= 0; null = unlimited",
}
OPT_INT: dict[str, Any] = {"type": ["integer", "null"]}
OPT_NUMBER: dict[str, Any] = {"type": ["number", "null"]}

TENANT_PARAM = Param(NAME, "The tenant.", "acme")
TENANT_QUERY = Param(NAME, "Only this tenant's items (it must be visible to the token).",
                     "acme")

SCOPE_STATUS: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "name", "tenant", "limit", "in_use", "surcharged", "hard_max", "cps"],
    "additionalProperties": False,
    "properties": {
        "kind": {"type": "string", "enum": ["tenant_inbound", "tenant_outbound",
                                            "tenant_total", "trunk", "number", "device",
                                            "pool"]},
        "name": {"type": "string"},
        "tenant": {"type": "string", "description": "owner; empty for trunks"},
        "limit": {**OPT_INT, "description": "configured limit; null = unlimited"},
        "in_use": {"type": "integer", "description": "calls holding it now"},
        "surcharged": {"type": "integer"},
        "hard_max": OPT_INT,
        "cps": {**OPT_NUMBER, "description": "trunks: new calls per second"},
    },
}


def list_of(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": [key], "additionalProperties": False,
            "properties": {key: {"type": "array", "items": item}}}

"""The one error shape of the /v1/ API, so scripts branch on `code` and people read `message`.

    {"error": {"code": "stable_code", "message": "A sentence.", "field": "hard_max.total"}}

`code` values are part of the public contract (scripts match on them); `message` may be
reworded; `field` is present only when one input field is at fault (dotted path into the
JSON body, or the name of the path or query parameter).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}

    def response(self) -> web.Response:
        headers = {"WWW-Authenticate": 'Bearer realm="callgate"'} if self.status == 401 else None
        return web.json_response(self.body(), status=self.status, headers=headers)


def invalid(code: str, message: str, field: str | None = None) -> ApiError:
    """422: the request is well-formed HTTP but its content cannot be applied."""
    return ApiError(422, code, message, field)


def forbidden(code: str, message: str, field: str | None = None) -> ApiError:
    return ApiError(403, code, message, field)


def not_found(code: str, message: str) -> ApiError:
    return ApiError(404, code, message)


def unavailable(code: str, message: str) -> ApiError:
    return ApiError(503, code, message)


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "description": "Stable, snake_case; match on it."},
                "message": {"type": "string", "description": "For people; may be reworded."},
                "field": {"type": "string",
                          "description": "The input field at fault (dotted body path, or "
                                         "the path/query parameter name)."},
            },
        },
    },
}

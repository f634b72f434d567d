"""Errors the service answers with: a 4xx status and a Custom Vision style `{"code", "message"}` body."""

from __future__ import annotations

from edgevision.contracts import ErrorBody, encode
from edgevision.errors import EdgeVisionError


class ApiError(EdgeVisionError):
    """A request the service refuses; `code` follows Custom Vision's error codes."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> ErrorBody:
        return ErrorBody(code=self.code, message=self.message)

    def to_json(self) -> dict[str, str]:
        return encode(self.body())


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)

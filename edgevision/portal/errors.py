"""The portal's errors in one place. API refusals are the scoring service's ApiError (status + Custom Vision
code), so both halves of the portal answer alike."""

from __future__ import annotations

from edgevision.classifier.errors import ApiError, bad_request
from edgevision.errors import EdgeVisionError

__all__ = ["ApiError", "PortalError", "bad_request", "not_found"]


class PortalError(EdgeVisionError):
    """The portal cannot start or run (bad settings, no keys beyond loopback, a port in use)."""


def not_found(code: str, message: str) -> ApiError:
    return ApiError(404, code, message)

"""The key check of every API route that has a key (the scorer's and the portal's): constant time, and an
address that keeps sending wrong keys is refused for a while (edgevision.keyguard)."""

from __future__ import annotations

import hmac

from flask import request

from edgevision.classifier.errors import ApiError
from edgevision.keyguard import KeyGuard, refusal_message


def refuse_if_guessing(guard: KeyGuard) -> str | None:
    """429 for an address with too many wrong keys of late; else the address, for the guard's bookkeeping."""
    address = request.remote_addr
    wait = guard.retry_after(address)
    if wait is not None:
        raise ApiError(429, "TooManyRequests", refusal_message(wait), {"Retry-After": str(wait)})
    return address


def require_key(header: str, key: bytes, guard: KeyGuard) -> None:
    address = refuse_if_guessing(guard)
    given = request.headers.get(header, "").encode()  # header names are case-insensitive
    if not given:  # a client without a key is misconfigured, not guessing: it keeps the plain answer
        raise ApiError(401, "Unauthorized", f"the {header} header is missing")
    if not hmac.compare_digest(given, key):
        guard.failed(address)
        raise ApiError(401, "Unauthorized", f"the {header} header is wrong")
    guard.succeeded(address)

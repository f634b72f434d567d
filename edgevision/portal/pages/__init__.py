"""The portal's web pages: one HTML shell and a small vanilla JS layer (package data, no build step, no CDN)
that calls the Training API routes from the browser, and the login that lets a browser use them.

When a training key is set, the key unlocks the pages: `POST /portal/login` answers with a session cookie
(HttpOnly, SameSite=Strict) and a CSRF token the JS sends as `X-CSRF-Token` on every state-changing request.
Both are HMACs of the training key, so a restart keeps sessions and a changed key ends them. Requests that send
the `Training-Key` header (scripts, the SDK) are checked as before and need no token.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import secrets
import time
from importlib import resources
from urllib.parse import urlsplit

from flask import Blueprint, Response, request

from edgevision.classifier.auth import refuse_if_guessing
from edgevision.keyguard import KeyGuard
from edgevision.portal.errors import ApiError, bad_request

COOKIE = "edgevision_portal_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 12 * 3600
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
LOOPBACK_NAMES = {"127.0.0.1", "::1", "localhost"}
STATIC = {"app.js": "text/javascript", "app.css": "text/css"}
# The pages load nothing from elsewhere; the policy makes that a rule the browser enforces.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def _sign(key: bytes, purpose: str, value: str) -> str:
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def new_session(key: bytes, now: float | None = None) -> str:
    expires = int((now or time.time()) + SESSION_SECONDS)
    body = f"{expires}.{secrets.token_urlsafe(18)}"
    return f"{body}.{_sign(key, 'session', body)}"


def valid_session(key: bytes, token: str, now: float | None = None) -> bool:
    body, _, mac = token.rpartition(".")
    expires = body.split(".", 1)[0]
    if not body or not expires.isdigit() or not hmac.compare_digest(mac.encode(), _sign(key, "session", body).encode()):
        return False
    return int(expires) > (now or time.time())


def csrf_token(key: bytes, session: str) -> str:
    return _sign(key, "csrf", session)[:40]


def require_session(key: bytes) -> None:
    """A Training API request without the key header: a valid session cookie, and a CSRF token if it writes."""
    session = request.cookies.get(COOKIE, "")
    if not session or not valid_session(key, session):
        raise ApiError(401, "Unauthorized", "the Training-Key header is missing (or log in to the pages)")
    if request.method not in SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), csrf_token(key, session).encode()):
            raise ApiError(403, "Forbidden", f"a state-changing request from the pages needs the {CSRF_HEADER} header")


def refuse_other_sites(keyless: bool, loopback: bool) -> None:
    """What another web site could make a visitor's browser send: refused (the SDK and scripts send neither).

    A write whose Origin is not this portal is a cross-site request forgery (the session cookie is SameSite,
    but without keys there is no cookie to withhold). Without keys on loopback, a Host that is not a loopback
    name is DNS rebinding: another site's name resolving to 127.0.0.1, whose pages could read and write here.
    """
    origin = request.headers.get("Origin")
    # host and port only: behind a TLS proxy the browser's scheme is not the one this process sees
    cross = request.headers.get("Sec-Fetch-Site") == "cross-site" or (
        origin is not None and urlsplit(origin).netloc.lower() != (request.host or "").lower()
    )
    if cross and request.method not in SAFE_METHODS:
        raise ApiError(403, "Forbidden", "a request from another web site may not change this portal")
    host = (request.host or "").rsplit(":", 1)[0].strip("[]").lower()
    if keyless and loopback and host not in LOOPBACK_NAMES and not host.startswith("127."):
        raise ApiError(403, "Forbidden", f"this portal answers only to a loopback address, not to {host!r}")


def create_blueprint(key: bytes | None, guard: KeyGuard) -> Blueprint:
    bp = Blueprint("pages", __name__)

    def page(body: bytes, mimetype: str) -> Response:
        response = Response(body, mimetype=mimetype)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-cache"
        return response

    @bp.get("/")
    def index() -> Response:
        return page(_asset("index.html"), "text/html")

    @bp.get("/pages/<name>")
    def static(name: str) -> Response:
        if name not in STATIC:
            raise ApiError(404, "NotFound", "no such file")
        return page(_asset(name), STATIC[name])

    @bp.get("/portal/session")
    def session() -> Response:
        return _json(_session_state(key, request.cookies.get(COOKIE, "")))

    @bp.post("/portal/login")
    def login() -> Response:
        if key is None:
            return _json({"loginRequired": False, "authenticated": True, "csrfToken": None})
        address = refuse_if_guessing(guard)
        if not hmac.compare_digest(_login_key().encode(), key):
            guard.failed(address)
            raise ApiError(401, "Unauthorized", "that is not this portal's training key")
        guard.succeeded(address)
        token = new_session(key)
        response = _json({"loginRequired": True, "authenticated": True, "csrfToken": csrf_token(key, token)})
        response.set_cookie(
            COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="Strict", secure=request.is_secure
        )
        return response

    @bp.post("/portal/logout")
    def logout() -> Response:
        if key is not None:
            require_session(key)
        response = _json({"loginRequired": key is not None, "authenticated": key is None, "csrfToken": None})
        response.delete_cookie(COOKIE, httponly=True, samesite="Strict")
        return response

    return bp


def _login_key() -> str:
    try:
        body = json.loads(request.get_data(cache=False) or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise bad_request("BadRequest", "the body is not valid JSON") from None
    given = body.get("key") if isinstance(body, dict) else None
    if not isinstance(given, str) or not given:
        raise bad_request("BadRequestRequiredParamIsNull", 'give the training key as {"key": ...}')
    return given.strip()


def _session_state(key: bytes | None, session: str) -> dict:
    # Advanced training fine-tunes with PyTorch (the finetune extra): the Train page offers it only when present.
    advanced = importlib.util.find_spec("torch") is not None
    if key is None:
        return {"loginRequired": False, "authenticated": True, "csrfToken": None, "advancedTraining": advanced}
    if session and valid_session(key, session):
        token = csrf_token(key, session)
        return {"loginRequired": True, "authenticated": True, "csrfToken": token, "advancedTraining": advanced}
    return {"loginRequired": True, "authenticated": False, "csrfToken": None, "advancedTraining": advanced}


def _json(body: dict, status: int = 200) -> Response:
    response = Response(json.dumps(body), status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response

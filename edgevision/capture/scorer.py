"""The scorer as the camera sees it: one pooled HTTP session POSTing JPEG frames, answers checked.

Whatever goes wrong (scorer down, slow, answering an error or something that is not a Custom Vision
response) becomes a `ScorerError`; the frame loop counts it, backs off and carries on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import requests
from requests.adapters import HTTPAdapter

NUMBERS = (int, float)
CONNECT_TIMEOUT = 3.05  # a scorer that does not accept the connection within this is down, whatever the read timeout


class ScorerError(Exception):
    """One frame was not scored. `transient` errors (unreachable, timeout, 5xx, garbage) may succeed on retry;
    the others (4xx: the scorer rejected this request) would fail the same way again."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class Scored:
    """The scorer's answer for one frame; `predictions` sorted by probability, highest first."""

    response: dict[str, Any]
    predictions: list[dict[str, Any]]
    model_id: str
    seconds: float

    @property
    def top(self) -> dict[str, Any] | None:
        return self.predictions[0] if self.predictions else None


class ScorerClient:
    """POSTs frames to `endpoint` (the Custom Vision `/image` API) over one kept-alive connection."""

    def __init__(
        self,
        endpoint: str,
        *,
        params: dict[str, str] | None = None,
        timeout: float = 10.0,
        prediction_key: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.params = params or {}
        self.timeout = timeout
        self._session = requests.Session()
        self._session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0))
        self._session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0))
        self._session.headers["Content-Type"] = "application/octet-stream"
        if prediction_key:
            self._session.headers["Prediction-Key"] = prediction_key

    def score(self, jpeg: bytes) -> Scored:
        started = time.perf_counter()
        try:
            response = self._session.post(
                self.endpoint, data=jpeg, params=self.params, timeout=(CONNECT_TIMEOUT, self.timeout)
            )
        except requests.Timeout:
            raise ScorerError(f"no answer within {self.timeout:g} s (REQUEST_TIMEOUT)") from None
        except requests.RequestException as exc:
            raise ScorerError(f"cannot reach {self.endpoint}: {_short(exc)}") from None
        seconds = time.perf_counter() - started
        body = _json(response)
        if response.status_code >= 400:
            detail = body.get("message") if isinstance(body, dict) else response.text[:200]
            raise ScorerError(
                f"HTTP {response.status_code}: {detail or response.reason}", transient=response.status_code >= 500
            )
        predictions = _predictions(body)
        if predictions is None:
            raise ScorerError(f"HTTP {response.status_code} but not a prediction response: {response.text[:120]!r}")
        model_id = response.headers.get("X-Model-Id") or str(body.get("iteration") or body.get("project") or "")
        return Scored(body, predictions, model_id, seconds)

    def close(self) -> None:
        self._session.close()


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _predictions(body: Any) -> list[dict[str, Any]] | None:
    """The predictions sorted by probability, or None when `body` is not a Custom Vision response."""
    if not isinstance(body, dict) or not isinstance(body.get("predictions"), list):
        return None
    try:  # one C-level sort and one pass: a 1000-tag answer costs about 0.1 ms here
        ranked = sorted(body["predictions"], key=itemgetter("probability"), reverse=True)
        if not all(type(p["tagName"]) is str and type(p["probability"]) in NUMBERS for p in ranked):
            return None
    except (KeyError, TypeError):  # not a dict, no such key, or probabilities that do not compare
        return None
    return ranked


def _short(exc: Exception) -> str:
    # requests nests urllib3 reasons several levels deep; the innermost line is the useful one.
    text = str(exc)
    return text.rsplit(": ", 1)[-1].rstrip(")'\"") if len(text) > 160 else text


class Backoff:
    """Exponential backoff: 0.5 s, 1 s, 2 s ... up to `maximum`; `reset` after a success."""

    def __init__(self, maximum: float, initial: float = 0.5) -> None:
        self.maximum = maximum
        self.initial = initial
        self._next = initial

    def next(self) -> float:
        delay = min(self._next, self.maximum)
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial

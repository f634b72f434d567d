"""The scorer as the camera sees it: one pooled HTTP session POSTing JPEG frames, answers checked.

Whatever goes wrong (scorer down, slow, answering an error or something that is not a Custom Vision
response) becomes a `ScorerError`; the frame loop counts it, backs off and carries on. The answer is checked
against the `ImagePrediction` contract (`contracts.read_answer`: every field of every entry, the entries kept
as plain dicts); one that does not match is a `rejected` ScorerError.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from edgevision.contracts import ContractError, ErrorBody, Prediction, as_prediction, parse, read_answer

CONNECT_TIMEOUT = 3.05  # a scorer that does not accept the connection within this is down, whatever the read timeout


class ScorerError(Exception):
    """One frame was not scored. `transient` errors (unreachable, timeout, 5xx) may succeed on retry; the
    others (4xx: the scorer rejected this request; an answer that is not an ImagePrediction) would fail the
    same way again."""

    def __init__(self, message: str, *, transient: bool = True, rejected: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.rejected = rejected  # answered, but not with an ImagePrediction


@dataclass
class Scored:
    """The scorer's answer for one frame, as `read_answer` checked it: `answer` the fields of the
    `ImagePrediction`, `ranked` its entries (plain dicts) sorted by probability, highest first. Only the entries
    a message carries become `Prediction` models (`reporting.top_n`)."""

    answer: dict[str, Any]
    ranked: list[dict[str, Any]]
    model_id: str
    seconds: float

    @cached_property
    def top(self) -> Prediction | None:
        return as_prediction(self.ranked[0]) if self.ranked else None


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
        if response.status_code >= 400:
            raise ScorerError(
                f"HTTP {response.status_code}: {_error_detail(response)}", transient=response.status_code >= 500
            )
        try:
            answer = read_answer(response.content)
        except ContractError as exc:
            # the same scorer would answer the same again: a reject, not worth retrying this frame
            raise ScorerError(f"HTTP {response.status_code} but {exc}", transient=False, rejected=True) from None
        # one C-level sort: a 1000-tag answer costs about 0.05 ms here
        ranked = sorted(answer["predictions"], key=itemgetter("probability"), reverse=True)
        model_id = response.headers.get("X-Model-Id") or answer["iteration"] or answer["project"]
        return Scored(answer, ranked, model_id, seconds)

    def close(self) -> None:
        self._session.close()


def _error_detail(response: requests.Response) -> str:
    try:
        return parse(ErrorBody, response.content).message
    except ContractError:
        return response.text[:200] or response.reason


def _short(exc: Exception) -> str:
    # requests nests urllib3 reasons several levels deep; the innermost line is the useful one.
    text = str(exc)
    return text.rsplit(": ", 1)[-1].rstrip(")'\"") if len(text) > 160 else text

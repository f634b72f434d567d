"""An address that keeps sending wrong Prediction-Keys is refused for a while (edgevision.keyguard), on a real
`edgevision serve` of its own: the refusals would otherwise reach the other tests' session-wide service."""

from __future__ import annotations

from collections.abc import Iterator

import imagegen
import pytest
import requests

from edgevision.keyguard import ATTEMPTS, WINDOW_SECONDS
from tests.classifier.conftest import KEY
from tests.conftest import ScoringService


@pytest.fixture
def keyed_service() -> Iterator[ScoringService]:
    service = ScoringService(env={"PREDICTION_KEY": KEY, "MAX_PREDICTIONS": "3"})
    yield service
    service.close()


def classify(service: ScoringService, **headers: str) -> requests.Response:
    photo = imagegen.ZEBRAS[0].read_bytes()
    return requests.post(f"{service.url}/image", data=photo, headers=headers, timeout=30)


def test_wrong_keys_lock_the_address_out_even_for_the_right_key(keyed_service: ScoringService) -> None:
    for _ in range(ATTEMPTS * 2):  # a client without a key is misconfigured, not guessing: never locked out
        assert classify(keyed_service).json()["message"] == "the Prediction-Key header is missing"
    for _ in range(ATTEMPTS - 1):
        assert classify(keyed_service, **{"Prediction-Key": "guess"}).status_code == 401
    assert classify(keyed_service, **{"Prediction-Key": KEY}).status_code == 200  # and it clears the count
    for _ in range(ATTEMPTS - 1):
        assert classify(keyed_service, **{"Prediction-Key": "guess"}).status_code == 401
    assert classify(keyed_service, **{"Prediction-Key": "guess"}).status_code == 401  # the limit's own failure

    refused = classify(keyed_service, **{"Prediction-Key": KEY})
    assert refused.status_code == 429
    assert refused.json()["code"] == "TooManyRequests"
    assert "too many wrong keys from this address" in refused.json()["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= WINDOW_SECONDS
    assert requests.get(f"{keyed_service.url}/health", timeout=10).status_code == 200  # keyless routes still answer

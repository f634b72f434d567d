"""Guessing the portal's keys: an address that sends too many wrong ones is refused for a while (429 with
Retry-After), on a real portal process of its own. The pages' login and the Training-Key header guess the same
key, so they share one count; the Prediction-Key has its own."""

from __future__ import annotations

import pytest
import requests

from edgevision.keyguard import ATTEMPTS, WINDOW_SECONDS
from tests.portal.conftest import PREDICTION_KEY, TRAINING_KEY, Portal, training

ERROR = training.models.CustomVisionErrorException


def log_in(portal: Portal, key: str) -> requests.Response:
    return requests.post(f"{portal.url}/portal/login", json={"key": key}, timeout=30)


def test_wrong_logins_and_training_keys_lock_the_address_out(portal: Portal) -> None:
    projects = f"{portal.url}/customvision/v3.4-preview/training/projects"
    for _ in range(ATTEMPTS // 2):
        assert log_in(portal, "guess").status_code == 401
    for _ in range(ATTEMPTS - ATTEMPTS // 2):
        assert requests.get(projects, headers={"Training-Key": "guess"}, timeout=30).status_code == 401

    refused = log_in(portal, TRAINING_KEY)
    assert refused.status_code == 429 and refused.json()["code"] == "TooManyRequests"
    assert 0 < int(refused.headers["Retry-After"]) <= WINDOW_SECONDS
    assert "Set-Cookie" not in refused.headers
    trainer = portal.trainer()
    trainer.config.retry_policy.retries = 0  # else msrest sleeps Retry-After and tries again, as scripts would
    with pytest.raises(ERROR) as caught:  # the official SDK, with the right key, gets the reason
        trainer.get_projects()
    assert caught.value.response.status_code == 429
    assert "too many wrong keys from this address" in caught.value.message

    # Another key's count: predicting with the right Prediction-Key still reaches the route (no such project).
    project = "00000000-0000-0000-0000-000000000000"
    predict = f"{portal.url}/customvision/v3.1/prediction/{project}/classify/iterations/x/image"
    answer = requests.post(predict, data=b"x", headers={"Prediction-Key": PREDICTION_KEY}, timeout=30)
    assert answer.status_code == 404


def test_a_right_login_clears_the_count(portal: Portal) -> None:
    for _ in range(2):
        for _ in range(ATTEMPTS - 1):
            assert log_in(portal, "guess").status_code == 401
        assert log_in(portal, TRAINING_KEY).status_code == 200

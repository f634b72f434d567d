"""Prediction-Key (constant-time compare, 401 JSON) and the /url SSRF guard."""

from __future__ import annotations

import imagegen
import pytest
import requests

from tests.classifier.conftest import KEY


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({}, "missing"), ({"Prediction-Key": "wrong"}, "wrong"), ({"Prediction-Key": KEY + "x"}, "wrong")],
)
def test_prediction_key_required(secured_service, http: requests.Session, headers: dict, reason: str) -> None:
    for path in (
        "/image",
        "/p/classify/iterations/x/image",
        "/customvision/v3.0/prediction/p/classify/iterations/x/url",
    ):
        response = http.post(f"{secured_service.url}{path}", data=imagegen.ZEBRAS[0].read_bytes(), headers=headers)
        assert response.status_code == 401, path
        assert response.json() == {"code": "Unauthorized", "message": f"the Prediction-Key header is {reason}"}


def test_right_key_in_any_header_case(secured_service, http: requests.Session) -> None:
    for header in ("Prediction-Key", "prediction-key", "Prediction-key"):
        response = http.post(
            f"{secured_service.url}/image", data=imagegen.ZEBRAS[0].read_bytes(), headers={header: KEY}
        )
        assert response.status_code == 200
        predictions = response.json()["predictions"]
        assert predictions[0]["tagName"] == "zebra"
        assert len(predictions) == 5  # MAX_PREDICTIONS=5


def test_health_and_metrics_need_no_key(secured_service, http: requests.Session) -> None:
    for path in ("/health", "/metrics", "/openapi.json", "/"):
        assert http.get(f"{secured_service.url}{path}").status_code == 200, path
    spec = http.get(f"{secured_service.url}/openapi.json").json()
    assert spec["security"] == [{"PredictionKey": []}]


def test_the_key_is_not_reported(secured_service, http: requests.Session) -> None:
    for path in ("/health", "/metrics", "/openapi.json"):
        assert KEY not in http.get(f"{secured_service.url}{path}").text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/health",
        "http://localhost:{port}/health",
        "http://[::1]:{port}/health",
        "http://169.254.169.254/metadata/instance",
        "http://10.0.0.1/a.jpg",
        "http://192.168.1.20/snapshot.jpg",
        "http://0.0.0.0:{port}/health",
    ],
)
def test_url_refuses_private_addresses_by_default(service, http: requests.Session, url: str) -> None:
    response = http.post(f"{service.url}/url", json={"url": url.format(port=service.port)})
    assert response.status_code == 400
    assert response.json()["code"] == "BadRequestImageUrl"
    assert "URL_ALLOW_PRIVATE" in response.json()["message"]

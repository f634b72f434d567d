"""Every route alias of the export container and the cloud API answers the Custom Vision JSON shape."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import imagegen
import pytest
import requests

from edgevision.classifier.app import detect_rules, prediction_rules

PROJECT = "3f4c1b7e-8a2d-4c39-9d55-0a1b2c3d4e5f"


def concrete(rule: str) -> str:
    return rule.replace("<project>", PROJECT).replace("<name>", "Iteration1")


IMAGE_PATHS = [concrete(rule) for rule in prediction_rules("image")]
EXPECTED_IMAGE_PATHS = {
    "/image",
    f"/{PROJECT}/image",
    f"/{PROJECT}/image/nostore",
    f"/{PROJECT}/classify/iterations/Iteration1/image",
    f"/{PROJECT}/classify/iterations/Iteration1/image/nostore",
    f"/customvision/v3.0/prediction/{PROJECT}/classify/iterations/Iteration1/image",
    f"/customvision/v3.0/prediction/{PROJECT}/classify/iterations/Iteration1/image/nostore",
    f"/customvision/v3.1/prediction/{PROJECT}/classify/iterations/Iteration1/image",
    f"/customvision/v3.1/prediction/{PROJECT}/classify/iterations/Iteration1/image/nostore",
}


def assert_prediction_shape(body: dict, model_tags: int | None = None) -> None:
    assert list(body) == ["id", "project", "iteration", "created", "predictions"]
    uuid.UUID(body["id"])
    created = datetime.fromisoformat(body["created"].replace("Z", "+00:00"))
    assert created.tzinfo is not None and abs(datetime.now(timezone.utc) - created) < timedelta(minutes=5)
    predictions = body["predictions"]
    assert predictions and all(list(p) == ["tagName", "probability", "tagId", "boundingBox"] for p in predictions)
    assert all(p["boundingBox"] is None for p in predictions)
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    if model_tags is not None:
        assert len(predictions) == model_tags


def test_every_image_alias_classifies_a_zebra(service, http: requests.Session) -> None:
    assert set(IMAGE_PATHS) == EXPECTED_IMAGE_PATHS
    data = imagegen.ZEBRAS[0].read_bytes()
    health = http.get(f"{service.url}/health").json()
    ids = set()
    for path in IMAGE_PATHS:
        response = http.post(f"{service.url}{path}", data=data, headers={"Content-Type": "application/octet-stream"})
        assert response.status_code == 200, (path, response.text)
        body = response.json()
        assert_prediction_shape(body, model_tags=1000)
        assert body["predictions"][0]["tagName"] == "zebra", path
        assert body["project"] == health["model"]["project"] and body["project"]
        assert body["iteration"] == health["model"]["iteration"]
        assert response.headers["X-Model-Id"] == health["modelId"]
        ids.add(body["id"])
    assert len(ids) == len(IMAGE_PATHS)  # a new id per prediction


def test_multipart_file_and_form_field(service, http: requests.Session) -> None:
    data = imagegen.ELEPHANTS.read_bytes()
    as_file = http.post(f"{service.url}/image", files={"imageData": ("e.jpg", data, "image/jpeg")})
    as_field = http.post(f"{service.url}/image", files={"imageData": (None, data)})
    raw_jpeg = http.post(f"{service.url}/image", data=data, headers={"Content-Type": "image/jpeg"})
    urlencoded_field = http.post(f"{service.url}/image", data={"imageData": data})
    # What `curl --data-binary @photo.jpg` sends: a raw image labelled as a urlencoded form.
    curl_style = http.post(
        f"{service.url}/image", data=data, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    responses = (as_file, as_field, raw_jpeg, urlencoded_field, curl_style)
    assert [r.status_code for r in responses] == [200] * 5
    tops = [r.json()["predictions"][:3] for r in responses]
    assert all(top == tops[0] for top in tops)
    assert "African elephant" in {p["tagName"] for p in tops[0]}


@pytest.mark.parametrize("segment", ["Prediction", "PREDICTION", "prediction"])
@pytest.mark.parametrize("version", ["v3.0", "v3.1"])
def test_cloud_routes_treat_prediction_case_insensitively(service, http, segment: str, version: str) -> None:
    url = f"{service.url}/customvision/{version}/{segment}/{PROJECT}/classify/iterations/Iteration1/image"
    response = http.post(url, params={"application": "my-app"}, data=imagegen.ZEBRAS[1].read_bytes())
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["tagName"] == "zebra"


def test_detect_routes_say_this_is_a_classification_model(service, http: requests.Session) -> None:
    for rule in detect_rules("image") + detect_rules("url"):
        response = http.post(f"{service.url}{concrete(rule)}", data=b"x")
        assert response.status_code == 400, rule
        assert response.json()["code"] == "BadRequestNotSupported"
        assert "classification" in response.json()["message"]


def test_index_is_short_text(service, http: requests.Session) -> None:
    response = http.get(f"{service.url}/")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "/image" in response.text and len(response.text) < 500


def test_health_names_the_model(service, http: requests.Session) -> None:
    body = http.get(f"{service.url}/health").json()
    assert body["status"] == "ok"
    assert re.fullmatch(r"imagenet-mobilenetv2@[0-9a-f]{12}", body["modelId"])
    assert body["model"]["tags"] == 1000


def test_unknown_route_and_wrong_method_answer_json(service, http: requests.Session) -> None:
    missing = http.get(f"{service.url}/no/such/route/here/at/all")
    assert missing.status_code == 404 and missing.json()["code"] == "NotFound"
    wrong = http.get(f"{service.url}/image")
    assert wrong.status_code == 405 and wrong.json()["code"] == "MethodNotAllowed"
    assert wrong.headers["Content-Type"] == "application/json"

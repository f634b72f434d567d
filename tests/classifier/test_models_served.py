"""Real Custom Vision exports served unchanged, published iterations, and a model that cannot be served."""

from __future__ import annotations

import subprocess
import sys

import imagegen
import requests

from tests.conftest import free_port, shared_path

EXPORTS = "models/customvision-exports"
MULTI_TAGS = ["controller", "keyboard", "laptop", "monitor", "mouse"]


def post(service, http: requests.Session, path: str, data: bytes) -> requests.Response:
    return http.post(f"{service.url}{path}", data=data, headers={"Content-Type": "application/octet-stream"})


def test_kitten_is_a_cat(catdog_service, http: requests.Session) -> None:
    kitten = shared_path(f"{EXPORTS}/cat-or-dog/sample_kitten_224.png").read_bytes()
    response = post(catdog_service, http, "/image", kitten)
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"][0]["tagName"] == "cat"
    assert body["predictions"][0]["probability"] >= 0.9
    assert sorted(p["tagName"] for p in body["predictions"]) == ["Negative", "cat", "dog"]
    # The classic export carries no project/iteration ids: empty, as the export container answers.
    assert body["project"] == "" and body["iteration"] == ""
    assert response.headers["X-Model-Id"].startswith("cat-or-dog@")


def test_published_multilabel_iteration_returns_its_five_tags(catdog_service, http: requests.Session) -> None:
    sums = []
    for photo in (*imagegen.ZEBRAS, imagegen.ELEPHANTS):
        response = post(catdog_service, http, "/p/classify/iterations/multi/image", photo.read_bytes())
        assert response.status_code == 200
        predictions = response.json()["predictions"]
        assert sorted(p["tagName"] for p in predictions) == MULTI_TAGS
        assert response.headers["X-Model-Id"].startswith("multi@")
        sums.append(sum(p["probability"] for p in predictions))
    assert any(abs(total - 1.0) > 0.01 for total in sums)  # independent probabilities
    health = http.get(f"{catdog_service.url}/health").json()
    assert "multi" in health["published"] and "legacy" not in health["published"]  # loaded lazily, cached


def test_published_iteration_on_cloud_route(catdog_service, http: requests.Session) -> None:
    path = "/customvision/v3.1/Prediction/p/classify/iterations/multi/image/nostore"
    response = post(catdog_service, http, path, imagegen.ZEBRAS[0].read_bytes())
    assert sorted(p["tagName"] for p in response.json()["predictions"]) == MULTI_TAGS


def test_publishing_again_under_the_same_name_serves_the_new_model(catdog_service, http: requests.Session) -> None:
    folder = catdog_service.published / "live"
    folder.mkdir()

    def publish(export: str) -> None:
        for file in ("model.onnx", "labels.txt"):
            link = folder / f".{file}.new"
            link.symlink_to(shared_path(f"{EXPORTS}/{export}/{file}"))
            link.replace(folder / file)  # atomic, as a publisher should

    photo = imagegen.ZEBRAS[0].read_bytes()
    publish("cat-or-dog")
    first = post(catdog_service, http, "/p/classify/iterations/live/image", photo)
    assert sorted(p["tagName"] for p in first.json()["predictions"]) == ["Negative", "cat", "dog"]
    publish("computer-multilabel")
    second = post(catdog_service, http, "/p/classify/iterations/live/image", photo)
    assert sorted(p["tagName"] for p in second.json()["predictions"]) == MULTI_TAGS
    assert first.headers["X-Model-Id"] != second.headers["X-Model-Id"]


def test_unknown_iteration_falls_back_to_the_default_model(catdog_service, http: requests.Session) -> None:
    for name in ("Iteration7", ".multi", "no such"):
        response = post(catdog_service, http, f"/p/classify/iterations/{name}/image", imagegen.ZEBRAS[0].read_bytes())
        assert response.status_code == 200, name
        assert sorted(p["tagName"] for p in response.json()["predictions"]) == ["Negative", "cat", "dog"]
        assert response.headers["X-Model-Id"].startswith("cat-or-dog@")


def test_unloadable_published_iteration_is_a_clear_error(catdog_service, http: requests.Session) -> None:
    response = post(catdog_service, http, "/p/classify/iterations/legacy/image", imagegen.ZEBRAS[0].read_bytes())
    assert response.status_code == 503
    assert response.json()["code"] == "ErrorPredictionModelNotFound"
    assert "ONNX 1.0" in response.json()["message"]
    assert post(catdog_service, http, "/image", imagegen.ZEBRAS[0].read_bytes()).status_code == 200


def test_onnx_1_0_export_stops_start_up_with_one_line() -> None:
    folder = shared_path(f"{EXPORTS}/legacy-onnx10-plankton")
    command = [sys.executable, "-m", "edgevision", "serve", "--model", str(folder), "--port", str(free_port())]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgevision serve: error: ")
    assert str(folder / "model.onnx") in lines[0] and "ONNX 1.0" in lines[0] and "opset 1" in lines[0]

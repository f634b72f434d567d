"""POST /url: downloads over http(s), bounded in size, following redirects, switchable off."""

from __future__ import annotations

import http.server as http_server
import threading
from collections.abc import Iterator

import imagegen
import pytest
import requests

from edgevision.classifier.app import prediction_rules
from tests.classifier.conftest import KEY
from tests.conftest import ScoringService

AUTH = {"Prediction-Key": KEY}


def test_url_classifies_a_downloaded_photo(secured_service, http: requests.Session, photo_server: str) -> None:
    paths = [rule.replace("<project>", "p").replace("<name>", "Iteration1") for rule in prediction_rules("url")]
    assert len(paths) == 9
    for path in paths:
        response = http.post(
            f"{secured_service.url}{path}", json={"url": f"{photo_server}/2014_000006.jpg"}, headers=AUTH
        )
        assert response.status_code == 200, (path, response.text)
        assert response.json()["predictions"][0]["tagName"] == "zebra"


def test_url_key_is_case_insensitive(secured_service, http: requests.Session, photo_server: str) -> None:
    response = http.post(f"{secured_service.url}/url", json={"Url": f"{photo_server}/2014_000002.jpg"}, headers=AUTH)
    assert "African elephant" in [p["tagName"] for p in response.json()["predictions"][:3]]


def test_url_answering_404(secured_service, http: requests.Session, photo_server: str) -> None:
    response = http.post(f"{secured_service.url}/url", json={"url": f"{photo_server}/missing.jpg"}, headers=AUTH)
    assert response.status_code == 400
    assert response.json() == {"code": "BadRequestImageUrl", "message": "the image URL answered HTTP 404"}


def test_url_to_something_not_an_image(secured_service, http: requests.Session, photo_server: str) -> None:
    response = http.post(f"{secured_service.url}/url", json={"url": f"{photo_server}/LICENSE.txt"}, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["code"] == "BadRequestImageFormat"


class _Tricky(http_server.BaseHTTPRequestHandler):
    """Redirects, oversized and slow answers."""

    def do_GET(self) -> None:
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/zebra")
            self.end_headers()
        elif self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
        elif self.path == "/zebra":
            self._send(imagegen.ZEBRAS[1].read_bytes())
        elif self.path == "/huge-declared":
            self.send_response(200)
            self.send_header("Content-Length", str(50 * 1024 * 1024))
            self.end_headers()
        elif self.path == "/huge-streamed":  # no Content-Length: the limit applies while reading
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(80):
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass
        elif self.path == "/slow":
            self.send_response(200)
            self.end_headers()
            threading.Event().wait(3)

    def _send(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def tricky_server() -> Iterator[str]:
    server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), _Tricky)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def limited_service() -> Iterator[ScoringService]:
    """1 MB images, 1 s downloads, loopback allowed."""
    env = {"URL_ALLOW_PRIVATE": "1", "MAX_IMAGE_BYTES": str(1024 * 1024), "URL_TIMEOUT": "1"}
    service = ScoringService(env=env)
    yield service
    service.close()


def test_url_follows_redirects(limited_service, http: requests.Session, tricky_server: str) -> None:
    response = http.post(f"{limited_service.url}/url", json={"url": f"{tricky_server}/redirect"})
    assert response.status_code == 200
    assert response.json()["predictions"][0]["tagName"] == "zebra"
    looping = http.post(f"{limited_service.url}/url", json={"url": f"{tricky_server}/loop"})
    assert looping.status_code == 400 and "redirects" in looping.json()["message"]


@pytest.mark.parametrize("path", ["/huge-declared", "/huge-streamed"])
def test_url_size_limit(limited_service, http: requests.Session, tricky_server: str, path: str) -> None:
    response = http.post(f"{limited_service.url}/url", json={"url": f"{tricky_server}{path}"})
    assert response.status_code == 413
    assert response.json()["code"] == "BadRequestImageSizeBytes"


def test_url_timeout(limited_service, http: requests.Session, tricky_server: str) -> None:
    response = http.post(f"{limited_service.url}/url", json={"url": f"{tricky_server}/slow"})
    assert response.status_code == 400
    assert response.json() == {"code": "BadRequestImageUrl", "message": "cannot download the image URL: timed out"}


def test_image_limit_is_configurable(limited_service, http: requests.Session) -> None:
    data = imagegen.random_bytes(1024 * 1024 + 1)
    response = http.post(f"{limited_service.url}/image", data=data, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 413 and "1,048,576" in response.json()["message"]


def test_url_can_be_switched_off(photo_server: str, http: requests.Session) -> None:
    service = ScoringService(env={"URL_ENABLED": "false", "URL_ALLOW_PRIVATE": "true"})
    try:
        response = http.post(f"{service.url}/url", json={"url": f"{photo_server}/2014_000006.jpg"})
        assert response.status_code == 404
        assert "URL_ENABLED=false" in response.json()["message"]
        paths = http.get(f"{service.url}/openapi.json").json()["paths"]
        assert "/image" in paths and not [p for p in paths if p.endswith(("/url", "/url/nostore"))]
    finally:
        service.close()

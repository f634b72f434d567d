"""Bad input never crashes the service and never gets a 5xx: each case gets a 4xx {"code", "message"}."""

from __future__ import annotations

import imagegen
import pytest
import requests

from tests.classifier.conftest import KEY
from tests.conftest import free_port

OCTET = {"Content-Type": "application/octet-stream"}


def assert_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]


def assert_still_serving(service, http: requests.Session) -> None:
    response = http.post(f"{service.url}/image", data=imagegen.ZEBRAS[0].read_bytes(), headers=OCTET)
    assert response.status_code == 200
    assert response.json()["predictions"][0]["tagName"] == "zebra"


CASES = {
    "empty-body": (lambda: b"", OCTET, 400, "BadRequestImageFormat"),
    "random-bytes": (imagegen.random_bytes, OCTET, 400, "BadRequestImageFormat"),
    "truncated-jpeg": (imagegen.truncated_jpeg, {"Content-Type": "image/jpeg"}, 400, "BadRequestImageFormat"),
    "png-bomb-30000x30000": (imagegen.png_bomb, {"Content-Type": "image/png"}, 400, "BadRequestImageDimensions"),
    "over-4mb": (lambda: imagegen.random_bytes(4 * 1024 * 1024 + 1), OCTET, 413, "BadRequestImageSizeBytes"),
    "far-over-4mb": (lambda: imagegen.random_bytes(7 * 1024 * 1024), OCTET, 413, "BadRequestImageSizeBytes"),
    "json-content-type": (lambda: b'{"a": 1}', {"Content-Type": "application/json"}, 415, "UnsupportedMediaType"),
    "text-content-type": (lambda: b"hello", {"Content-Type": "text/plain"}, 415, "UnsupportedMediaType"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_image_bodies(service, http: requests.Session, case: str) -> None:
    payload, headers, status, code = CASES[case]
    assert_error(http.post(f"{service.url}/image", data=payload(), headers=headers), status, code)
    assert_still_serving(service, http)


def test_extreme_aspect_ratio_is_refused_before_scaling(service, http: requests.Session) -> None:
    from PIL import Image

    sliver = imagegen.encode(Image.new("RGB", (40_000, 1), (20, 120, 40)), "PNG")  # 200 bytes of PNG
    response = http.post(f"{service.url}/image", data=sliver, headers=OCTET)
    assert_error(response, 400, "BadRequestImageDimensions")
    assert "40000 x 1" in response.json()["message"]
    banner = imagegen.encode(Image.new("RGB", (300, 3), (20, 120, 40)), "PNG")  # 100:1 is still accepted
    assert http.post(f"{service.url}/image", data=banner, headers=OCTET).status_code == 200
    assert_still_serving(service, http)


def test_multipart_without_image_data(service, http: requests.Session) -> None:
    response = http.post(f"{service.url}/image", files={"picture": ("z.jpg", imagegen.ZEBRAS[0].read_bytes())})
    assert_error(response, 400, "BadRequestImageStream")
    assert "imageData" in response.json()["message"]
    assert_still_serving(service, http)


def test_multipart_over_the_limit(service, http: requests.Session) -> None:
    big = imagegen.random_bytes(5 * 1024 * 1024)
    assert_error(
        http.post(f"{service.url}/image", files={"imageData": ("b.jpg", big)}), 413, "BadRequestImageSizeBytes"
    )
    assert_still_serving(service, http)


def test_multipart_with_bad_image(service, http: requests.Session) -> None:
    response = http.post(f"{service.url}/image", files={"imageData": ("t.jpg", imagegen.truncated_jpeg())})
    assert_error(response, 400, "BadRequestImageFormat")


URL_CASES = {
    "bad-json": (b'{"url": ', "application/json", 400, "BadRequest"),
    "not-an-object": (b'["http://example.com/a.jpg"]', "application/json", 400, "BadRequestImageUrl"),
    "missing-url": (b'{"link": "http://example.com/a.jpg"}', "application/json", 400, "BadRequestImageUrl"),
    "file-scheme": (b'{"url": "file:///etc/passwd"}', "application/json", 400, "BadRequestImageUrl"),
    "ftp-scheme": (b'{"url": "ftp://example.com/a.jpg"}', "application/json", 400, "BadRequestImageUrl"),
    "relative": (b'{"url": "/a.jpg"}', "application/json", 400, "BadRequestImageUrl"),
    "broken-ipv6": (b'{"url": "http://[::1/a.jpg"}', "application/json", 400, "BadRequestImageUrl"),
    "port-out-of-range": (b'{"url": "http://example.com:99999/a.jpg"}', "application/json", 400, "BadRequestImageUrl"),
    "not-utf8": (b'{"url": "\xff\xfe"}', "application/json", 400, "BadRequest"),
    "unresolvable-host": (
        b'{"url": "http://no-such-host.invalid/a.jpg"}',
        "application/json",
        400,
        "BadRequestImageUrl",
    ),
    "wrong-content-type": (b"http://example.com/a.jpg", "text/plain", 415, "UnsupportedMediaType"),
}


@pytest.mark.parametrize("case", URL_CASES, ids=list(URL_CASES))
def test_bad_url_requests(service, http: requests.Session, case: str) -> None:
    body, content_type, status, code = URL_CASES[case]
    response = http.post(f"{service.url}/url", data=body, headers={"Content-Type": content_type})
    assert_error(response, status, code)
    assert_still_serving(service, http)


def test_unreachable_host(secured_service, http: requests.Session) -> None:
    closed = f"http://127.0.0.1:{free_port()}/a.jpg"  # loopback allowed here, but nothing listens
    response = http.post(f"{secured_service.url}/url", json={"url": closed}, headers={"Prediction-Key": KEY})
    assert_error(response, 400, "BadRequestImageUrl")
    assert "cannot download" in response.json()["message"]


def test_damaged_images_never_get_a_5xx(service, http: requests.Session) -> None:
    """Seeded corruptions of real JPEG/PNG/GIF bytes: each answer is 200 or a 4xx JSON error."""
    import random

    from PIL import Image

    rng = random.Random(11)
    small = imagegen.photo(imagegen.ELEPHANTS).resize((160, 120))
    originals = [imagegen.ZEBRAS[1].read_bytes(), imagegen.encode(small, "PNG"), imagegen.encode(small, "GIF")]
    originals.append(imagegen.encode(small.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "BMP"))
    for original in originals:
        for _ in range(6):
            data = bytearray(original)
            for _ in range(rng.randint(1, 40)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.3:
                data = data[: rng.randrange(16, len(data))]
            response = http.post(f"{service.url}/image", data=bytes(data), headers=OCTET)
            assert response.status_code == 200 or (
                400 <= response.status_code < 500 and response.json()["code"].startswith("BadRequest")
            ), response.text
    assert_still_serving(service, http)

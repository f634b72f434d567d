"""The service decodes what cameras and clients send: JPEG, PNG, BMP, GIF (first frame), EXIF orientation."""

from __future__ import annotations

import imagegen
import pytest
import requests
from PIL import Image


def classify(service, http: requests.Session, data: bytes) -> list[dict]:
    response = http.post(f"{service.url}/image", data=data, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def scores(predictions: list[dict]) -> dict[str, float]:
    return {p["tagName"]: p["probability"] for p in predictions}


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "GIF"])
def test_formats(service, http: requests.Session, fmt: str) -> None:
    zebra = imagegen.photo(imagegen.ZEBRAS[1])
    predictions = classify(service, http, imagegen.encode(zebra, fmt))
    assert predictions[0]["tagName"] == "zebra", fmt


def test_animated_gif_is_scored_on_its_first_frame(service, http: requests.Session) -> None:
    zebra = imagegen.photo(imagegen.ZEBRAS[0]).resize((400, 300))
    elephants = imagegen.photo(imagegen.ELEPHANTS).resize((400, 300))
    zebra_first = classify(service, http, imagegen.animated_gif(zebra, elephants))
    elephants_first = classify(service, http, imagegen.animated_gif(elephants, zebra))
    assert zebra_first[0]["tagName"] == "zebra"
    assert "African elephant" in [p["tagName"] for p in elephants_first[:3]]
    # The first frame alone scores exactly like the animation.
    assert scores(classify(service, http, imagegen.encode(zebra, "GIF"))) == pytest.approx(scores(zebra_first))


def test_exif_orientation_is_applied_before_scoring(service, http: requests.Session) -> None:
    upright = imagegen.photo(imagegen.ELEPHANTS)
    data = imagegen.exif_rotated_jpeg(upright)
    stored = imagegen.without_exif(data)  # the sideways pixels as the JPEG holds them
    turned = stored.transpose(Image.Transpose.ROTATE_270)  # what a viewer shows
    with_exif = scores(classify(service, http, data))
    # The same pixels, turned upright by us and sent losslessly: identical scores.
    assert with_exif == pytest.approx(scores(classify(service, http, imagegen.encode(turned, "PNG"))), abs=1e-6)
    # Scored sideways (orientation ignored) they would differ.
    sideways = scores(classify(service, http, imagegen.encode(stored, "PNG")))
    assert max(abs(with_exif[tag] - sideways[tag]) for tag in with_exif) > 0.01

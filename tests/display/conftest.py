"""Display fixtures: real scoring results (the real `edgevision serve` on real photos), shaped as the camera's
output1 body, and helpers to read icons straight from the data files."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import requests

from edgevision.demo import DEMO_PHOTOS

PACKAGE = Path(__file__).resolve().parents[2] / "edgevision" / "display"

# Real photos bundled with edgevision; what each shows is asserted from the service's answer, not assumed.
PHOTOS = {
    "zebra": DEMO_PHOTOS / "wildlife-wildbook" / "2014_000006.jpg",
    "elephant": DEMO_PHOTOS / "wildlife-wildbook" / "2014_000002.jpg",
    "wild dogs": DEMO_PHOTOS / "wildlife-wildbook" / "2014_000005.jpg",
    "dog": DEMO_PHOTOS / "darknet" / "dog.jpg",
    "horses": DEMO_PHOTOS / "darknet" / "horses.jpg",
}


@pytest.fixture(scope="session")
def camera_message(scoring_service) -> Callable[[str], dict]:
    """name -> the camera's output1 body for that photo, scored by the real service (cached per session)."""
    cache: dict[str, dict] = {}

    def message(name: str) -> dict:
        if name not in cache:
            photo = PHOTOS[name]
            response = requests.post(
                f"{scoring_service.url}/image",
                data=photo.read_bytes(),
                headers={"Content-Type": "application/octet-stream"},
                timeout=30,
            )
            response.raise_for_status()
            body = response.json()
            best = max(body["predictions"], key=lambda p: p["probability"])
            cache[name] = {
                **body,
                "topTag": best["tagName"],
                "topProbability": best["probability"],
                "source": str(photo),
                "frame": 1,
                "capturedAt": datetime.now(timezone.utc).isoformat(),
                "modelId": "default",
            }
        return json.loads(json.dumps(cache[name]))  # a fresh copy each time

    return message


def top_of(message: dict) -> tuple[str, float]:
    best = max(message["predictions"], key=lambda p: p["probability"])
    return best["tagName"], best["probability"]


def read_icon(name: str, source: Path = PACKAGE / "icons.json") -> np.ndarray:
    """An icon decoded from the JSON by hand, independently of edgevision.display.icons."""
    data = json.loads(source.read_text())
    entry = data["idle"] if name == "idle" else data["icons"][name]
    return decode_rows(entry["rows"], entry["palette"])


def decode_rows(rows: list[str], palette: dict[str, str]) -> np.ndarray:
    frame = np.zeros((8, 8, 3), dtype=np.uint8)
    for y, row in enumerate(rows):
        for x, char in enumerate(row):
            if char != ".":
                colour = palette[char]
                frame[y, x] = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return frame


def read_glyph(char: str) -> np.ndarray:
    """Where a glyph of font.json lights LEDs, centred as the display draws it (row 1, column 1)."""
    font = json.loads((PACKAGE / "font.json").read_text())
    mask = np.zeros((8, 8), dtype=bool)
    for y, row in enumerate(font["glyphs"][char]):
        for x, cell in enumerate(row):
            mask[1 + y, 1 + x] = cell == "#"
    return mask


# Test modules are imported with --import-mode=importlib, so the helpers travel as fixtures.
@pytest.fixture(scope="session")
def top() -> Callable[[dict], tuple[str, float]]:
    return top_of


@pytest.fixture(scope="session")
def icon_pixels() -> Callable[..., np.ndarray]:
    return read_icon


@pytest.fixture(scope="session")
def glyph_mask() -> Callable[[str], np.ndarray]:
    return read_glyph

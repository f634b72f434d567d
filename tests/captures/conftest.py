"""Fixtures of the captures tool: capture folders written by the camera's own code (a real capture run, and a
planned park written through its real store), the mapping file, the shared Camtrap DP schemas and example."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from edgevision.capture.store import CaptureStore
from edgevision.contracts import CaptureSidecar, Prediction
from edgevision.demo.slideshow import make_slideshow
from tests.capture.conftest import ELEPHANTS, SLIDES, ZEBRAS_1, ZEBRAS_2, ModuleProcess
from tests.conftest import ScoringService, shared_path

PYTHON = sys.executable
MODEL = "parkcam@3"
DAY1 = datetime(2026, 11, 30, tzinfo=timezone.utc)
DAY2 = DAY1 + timedelta(days=1)
H = timedelta(hours=1)
S = timedelta(seconds=1)

# The planned park: (device, time, matched tag, {tag: probability} of the multi-label model's predictions).
# Tags at >= 0.5 are in the frame; the lower ones are noise the report must ignore.
PLAN: list[tuple[str, datetime, str, dict[str, float]]] = [
    ("north", DAY1 + 6 * H, "deer", {"deer": 0.92, "person": 0.10, "empty": 0.05}),
    ("north", DAY1 + 6 * H + 20 * S, "person", {"person": 0.88, "deer": 0.20}),
    ("north", DAY1 + 6 * H + 40 * S, "deer", {"deer": 0.81, "person": 0.77}),  # both in one frame
    ("north", DAY1 + 9 * H, "dog", {"dog": 0.90}),
    ("north", DAY1 + 9 * H + 300 * S, "deer", {"deer": 0.85, "dog": 0.30}),  # 5 min after the dog
    ("north", DAY1 + 18 * H + 1800 * S, "deer", {"deer": 0.70, "dog": 0.66}),  # both in one frame
    ("north", DAY2 + 6 * H + 600 * S, "deer", {"deer": 0.95}),
    ("north", DAY2 + 6 * H + 610 * S, "dog", {"dog": 0.83, "badger": 0.61}),  # badger: not in the mapping
    ("south", DAY2 + 12 * H, "person", {"person": 0.91}),
    ("south", DAY2 + 12 * H + 5 * S, "person", {"person": 0.89}),
    ("south", DAY2 + 21 * H, "deer", {"deer": 0.76}),
]
# What follows from PLAN (checked by hand): frames per tag, co-occurrences, interaction events.
TAG_FRAMES = {"deer": 6, "person": 4, "dog": 3, "badger": 1}
COOCCURRENCE = {("deer", "person"): 1, ("deer", "dog"): 1, ("badger", "dog"): 1}
EVENTS_30S = 3  # north 06:00:00-06:00:40, north 18:30, north day 2 06:10:00-06:10:10
EVENTS_600S = 4  # ... plus north 09:00-09:05

MAPPING = {
    "tags": {
        "deer": {"scientificName": "Cervidae", "taxonRank": "family", "vernacularName": "deer"},
        "dog": "Canis lupus familiaris",
        "person": {"observationType": "human", "scientificName": "Homo sapiens"},
        "zebra": {"scientificName": "Equus quagga", "taxonRank": "species"},
        "African elephant": {"scientificName": "Loxodonta africana", "taxonRank": "species"},
    },
    "deployments": {
        "north": {"latitude": 46.521, "longitude": 6.632, "locationName": "north gate", "featureType": "trailHiking"},
        "south": {"deploymentID": "S1", "latitude": 46.501, "longitude": 6.640, "coordinateUncertainty": 10},
        "captures": {"latitude": -2.333, "longitude": 34.833, "locationName": "slideshow"},
    },
    "package": {"title": "Park trail cameras", "contributors": [{"title": "A. Ranger", "role": "contact"}]},
}


@dataclass(frozen=True)
class Park:
    root: Path
    bad: dict[str, str]  # relative path -> what is wrong with it


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "edgevision", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def tags_of(sidecar: dict[str, Any], threshold: float = 0.5) -> set[str]:
    """The tags of a frame, read straight from its sidecar JSON (the rule docs/captures.md states)."""
    return {sidecar["matchedTag"]} | {p["tagName"] for p in sidecar["predictions"] if p["probability"] >= threshold}


@pytest.fixture(scope="session")
def camtrap_dir() -> Path:
    return shared_path("camtrap-dp")


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    """Real camera-trap photos; none of the shared ones shows a deer, so a bear stands in for the deer frames
    (the tools read the sidecars, not the pixels)."""
    folder = shared_path("media/camera-trap")
    names = {"deer": "american_black_bear.jpg", "person": "human.jpg", "dog": "domestic_dog.jpg"}
    return {tag: (folder / name).read_bytes() for tag, name in names.items()}


@pytest.fixture(scope="session")
def mapping_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mapping") / "mapping.json"
    path.write_text(json.dumps(MAPPING, indent=1))
    return path


def write_plan(root: Path, photos: dict[str, bytes]) -> None:
    """PLAN through the camera's own store (sidecar then JPEG, atomically, its naming), one folder per device."""
    stores: dict[str, CaptureStore] = {}
    for frame, (device, when, matched, predictions) in enumerate(PLAN):
        store = stores.setdefault(device, CaptureStore(root / device))
        ranked = sorted(predictions.items(), key=lambda item: -item[1])
        sidecar = CaptureSidecar(
            capturedAt=when + timedelta(milliseconds=250),
            source="rtsp://park-cam/stream",
            frame=frame,
            videoTime=float(frame),
            width=640,
            height=480,
            matchedTag=matched,
            matchedProbability=predictions[matched],
            topTag=ranked[0][0],
            topProbability=ranked[0][1],
            modelId=MODEL,
            predictions=[Prediction(tagName=tag, probability=p) for tag, p in ranked],
        )
        store.save(photos[matched], sidecar, captured_at=sidecar.capturedAt, frame=frame, tag=matched)


def write_bad_files(root: Path, photos: dict[str, bytes]) -> dict[str, str]:
    """Captures the tools must skip and list: no sidecar, a truncated one, one of another version; and a
    sidecar whose JPEG never came."""
    day = root / "north" / "2026-11-30"
    good = json.loads(next(day.glob("*.json")).read_text())
    bad = {
        "north/2026-11-30/20261130T100000_000000Z_000100_deer.jpg": "no sidecar",
        "north/2026-11-30/20261130T100001_000000Z_000101_deer.jpg": "not JSON",
        "north/2026-11-30/20261130T100002_000000Z_000102_deer.jpg": "another version",
        "north/2026-11-30/20261130T100003_000000Z_000103_deer.json": "without its JPEG",
    }
    names = list(bad)
    (root / names[0]).write_bytes(photos["deer"])
    (root / names[1]).write_bytes(photos["deer"])
    (root / names[1]).with_suffix(".json").write_text(json.dumps(good)[:60])
    (root / names[2]).write_bytes(photos["deer"])
    older = {"version": 0, "time": good["capturedAt"], "tag": "deer", "score": 0.9, "file": Path(names[2]).name}
    (root / names[2]).with_suffix(".json").write_text(json.dumps(older))
    (root / names[3]).write_text(json.dumps(good))
    return bad


@pytest.fixture(scope="session")
def park(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, bytes]) -> Park:
    """Two devices' capture folders side by side (DIR/<device>/YYYY-MM-DD/...), plus four bad files."""
    root = tmp_path_factory.mktemp("park")
    write_plan(root, photos)
    return Park(root, write_bad_files(root, photos))


@pytest.fixture(scope="session")
def real_captures(tmp_path_factory: pytest.TempPathFactory, scoring_service: ScoringService) -> Path:
    """A capture folder made by a real `edgevision capture` run: the slideshow of real photos scored by the
    real scoring service, zebras and elephants kept."""
    work = tmp_path_factory.mktemp("real")
    clip = make_slideshow(SLIDES, work / "slides.avi", 5.0, 0.6)
    captures = work / "captures"
    env = {
        "VIDEO_PATH": os.fspath(clip),
        "LOOP_VIDEO": "False",
        "IMAGE_PROCESSING_ENDPOINT": f"{scoring_service.url}/image",
        "CAPTURE_TAGS": "zebra,African elephant",
        "CAPTURE_COOLDOWN": "0",
        "CAPTURE_DIR": os.fspath(captures),
    }
    module = ModuleProcess(env, work / "capture.log")
    try:
        assert module.wait(90) == 0, module.log
    finally:
        module.stop()
    kept = [*clip.frames_of(ZEBRAS_1), *clip.frames_of(ZEBRAS_2), *clip.frames_of(ELEPHANTS)]
    assert len(list(captures.rglob("*.jpg"))) == len(kept), module.log
    return captures

"""The exported model in the real scoring service: held-out tiles of every class, by default model and by
published name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import ScoringService
from tests.train.conftest import CLASSES, edgevision, held_out_tiles


@pytest.fixture(scope="module")
def service(trained: Path) -> Iterator[ScoringService]:
    """`edgevision serve --model <iteration 1>` with the project's published folder."""
    result = edgevision("publish", "--project", str(trained), "--iteration", "1", "--name", "landuse")
    assert result.returncode == 0, result.stderr
    running = ScoringService(
        model=trained / "iterations" / "1" / "model", env={"PUBLISHED_DIR": str(trained / "published")}
    )
    yield running
    running.close()


def project_info(project: Path) -> tuple[dict, dict]:
    return (
        json.loads((project / "project.json").read_text()),
        json.loads((project / "iterations" / "1" / "iteration.json").read_text()),
    )


def test_service_classifies_held_out_tiles(service: ScoringService, trained: Path) -> None:
    project, iteration = project_info(trained)
    tag_ids = {tag["name"]: tag["id"] for tag in project["tags"]}
    for tag, tile in held_out_tiles().items():
        response = requests.post(
            f"{service.url}/image", data=tile.read_bytes(), headers={"Content-Type": "application/octet-stream"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["project"] == project["id"]
        assert body["iteration"] == iteration["id"]
        top = max(body["predictions"], key=lambda p: p["probability"])
        assert top["tagName"] == tag, (tile.name, body["predictions"])
        assert top["tagId"] == tag_ids[tag]
        assert sum(p["probability"] for p in body["predictions"]) == pytest.approx(1.0, abs=1e-4)


def test_published_name_serves_the_iteration(service: ScoringService, trained: Path) -> None:
    project, iteration = project_info(trained)
    tile = held_out_tiles()["Developed"]
    url = f"{service.url}/{project['id']}/classify/iterations/landuse/image"
    response = requests.post(url, files={"imageData": ("tile.png", tile.read_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["iteration"] == iteration["id"]
    assert max(body["predictions"], key=lambda p: p["probability"])["tagName"] == "Developed"
    assert (trained / "published" / "landuse" / "labels.txt").read_text().split() == list(CLASSES)

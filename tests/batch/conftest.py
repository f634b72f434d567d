"""Batch fixtures: a tree of real images (aerial tiles by area/year, shipped photos, broken files), one
SparkSession for the session, and the scores of both engines computed once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import shared_path

PYTHON = sys.executable
AERIAL = "datasets/aerial-small/train"
# Files every tree holds that no engine can score, with the error code each must report.
BROKEN = {
    "broken/corrupt.jpg": "BadRequestImageFormat",  # a JPEG cut short
    "broken/notes.txt": "BadRequestImageFormat",  # not an image at all
    "broken/empty.jpg": "BadRequestImageFormat",  # zero bytes
}
HIDDEN = ("photos/.DS_Store", "_staging/skipped.jpg")  # Spark's hidden-file rule: never scored


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "edgevision", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _photo_tree(root: Path, demo_photos: list[Path]) -> None:
    for photo in demo_photos:
        target = root / "photos" / photo.parent.name / photo.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo, target)
    shutil.copyfile(demo_photos[0], root / "photos" / "a photo with spaces.jpg")
    (root / "broken").mkdir()
    (root / "broken" / "corrupt.jpg").write_bytes(demo_photos[0].read_bytes()[:2000])
    (root / "broken" / "notes.txt").write_text("field notes, not a picture\n")
    (root / "broken" / "empty.jpg").write_bytes(b"")
    for hidden in HIDDEN:
        (root / hidden).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(demo_photos[0], root / hidden)


@pytest.fixture(scope="session")
def photo_tree(tmp_path_factory: pytest.TempPathFactory, demo_photos: list[Path]) -> Path:
    """Shipped photos plus the broken and hidden files: runs everywhere."""
    root = tmp_path_factory.mktemp("photos-tree")
    _photo_tree(root, demo_photos)
    return root


@pytest.fixture(scope="session")
def image_tree(tmp_path_factory: pytest.TempPathFactory, demo_photos: list[Path]) -> Path:
    """The aerial tiles laid out as AREA/YEAR/tile.png (taken from the tile names, e.g. ..._ca025_2016_...),
    plus the photos, broken and hidden files: a few hundred real images."""
    tiles = sorted(shared_path(AERIAL).rglob("*.png"))
    root = tmp_path_factory.mktemp("image-tree")
    for tile in tiles:
        parts = tile.stem.split("_")  # ortho_1-1_hn_s_ca025_2016_1_6998
        target = root / "tiles" / parts[4] / parts[5] / f"{tile.parent.name}-{tile.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(tile, target)
    _photo_tree(root, demo_photos)
    return root


def scorable_files(root: Path) -> list[Path]:
    """What both engines must score: every file except hidden ones."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
    )


@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for the whole batch test session (starting one costs 5-25 s)."""
    from edgevision.batch.spark_engine import SparkUnavailable, check_spark_available, spark_session

    try:
        check_spark_available()
    except SparkUnavailable as exc:
        pytest.skip(str(exc))
    session = spark_session("local[2]", {"spark.ui.enabled": "false"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def local_out(image_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`edgevision score TREE --out OUT --csv` with the local engine (the real command, two workers)."""
    out = tmp_path_factory.mktemp("local-out")
    result = run_cli("score", str(image_tree), "--out", str(out), "--csv", "--workers", "2")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def spark_out(image_tree: Path, spark, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The same tree scored by the Spark engine on the shared session."""
    from edgevision.batch.settings import BatchSettings
    from edgevision.batch.spark_engine import score_spark

    out = tmp_path_factory.mktemp("spark-out")
    score_spark(str(image_tree), str(out), settings=BatchSettings(), csv=True, overwrite=True, session=spark)
    yield out

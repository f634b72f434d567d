"""Trainer fixtures: one real training run on the shipped aerial-mini set, shared by the module's tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_path

ROOT = Path(__file__).resolve().parents[2]
AERIAL_MINI = ROOT / "tests" / "data" / "aerial-mini"
CLASSES = ("Barren", "Cultivated", "Developed")


def edgevision(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real console command, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "edgevision", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def held_out_tiles() -> dict[str, Path]:
    """The first tile of each class of aerial-small that is not in the shipped aerial-mini."""
    root = shared_path("datasets/aerial-small/train")
    shipped = {p.read_bytes() for p in AERIAL_MINI.rglob("*.png")}
    return {
        tag: next(p for p in sorted((root / tag).glob("*.png")) if p.read_bytes() not in shipped) for tag in CLASSES
    }


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory) -> str:
    """One feature cache for the runs whose subject is not the cache itself (they train on the same tiles)."""
    return str(tmp_path_factory.mktemp("feature-cache"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory, feature_cache: str) -> Path:
    """A project with iteration 1 trained on aerial-mini by `edgevision train` (default settings)."""
    project = tmp_path_factory.mktemp("train") / "land-use"
    result = edgevision("train", str(AERIAL_MINI), "--project", str(project), "--cache", feature_cache)
    assert result.returncode == 0, result.stderr
    return project

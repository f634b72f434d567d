"""Trainer fixtures: one real training run on the shipped aerial-mini set, shared by the module's tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AERIAL_MINI = ROOT / "tests" / "data" / "aerial-mini"
CLASSES = ("Barren", "Cultivated", "Developed")


def edgevision(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real console command, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "edgevision", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


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

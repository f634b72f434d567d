"""Quality on the whole shared aerial-small set (360 tiles), default settings, held-out k-fold figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import shared_path
from tests.train.conftest import edgevision


@pytest.mark.slow
def test_default_training_on_aerial_small_is_accurate(tmp_path: Path) -> None:
    data = shared_path("datasets/aerial-small/train")
    project = tmp_path / "aerial"
    result = edgevision("train", str(data), "--project", str(project), "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["dataset"]["images"] == 360
    assert info["evaluation"]["folds"] == 5
    assert info["metrics"]["accuracy"] >= 0.9
    assert info["metrics"]["meanAveragePrecision"] >= 0.95

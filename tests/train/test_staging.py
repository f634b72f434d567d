"""An iteration is written in a private staging folder: a run that fails leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgevision.train.project import Project


def test_a_failed_iteration_leaves_no_staging_folder(tmp_path: Path) -> None:
    project = Project.open_or_create(tmp_path / "p", multilabel=False)
    with pytest.raises(RuntimeError), project.new_iteration_dir() as (number, staging):
        (staging / "metrics.json").write_text("{}")
        raise RuntimeError("export failed")
    assert number == 1
    assert not staging.exists()
    assert list((tmp_path / "p" / "iterations").iterdir()) == []


def test_a_staging_folder_survives_its_block_until_committed(tmp_path: Path) -> None:
    project = Project.open_or_create(tmp_path / "p", multilabel=False)
    with project.new_iteration_dir() as (number, staging):
        (staging / "metrics.json").write_text("{}")
    assert staging.is_dir() and number == 1

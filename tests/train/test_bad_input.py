"""Bad training data: clear errors before any work, unreadable files skipped and listed, duplicates reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.train.conftest import AERIAL_MINI, CLASSES, edgevision


def copy_mini(target: Path) -> Path:
    shutil.copytree(AERIAL_MINI, target, ignore=shutil.ignore_patterns("README.md", "LICENSE"))
    return target


def test_too_few_images_fails_before_any_work(tmp_path: Path) -> None:
    data = copy_mini(tmp_path / "data")
    for extra in sorted((data / "Barren").iterdir())[4:]:
        extra.unlink()
    project = tmp_path / "project"
    result = edgevision("train", str(data), "--project", str(project))
    assert result.returncode == 2
    assert "'Barren' (4 files)" in result.stderr and "at least 5 images" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not project.exists()


def test_one_tag_is_not_enough(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(AERIAL_MINI / "Barren", data / "Barren")
    result = edgevision("train", str(data), "--project", str(tmp_path / "project"))
    assert result.returncode == 2
    assert "at least 2 tags" in result.stderr and "'Barren'" in result.stderr


@pytest.mark.slow
def test_unreadable_files_are_skipped_and_listed(tmp_path: Path, feature_cache: str) -> None:
    data = copy_mini(tmp_path / "data")
    (data / "Barren" / "notes.txt").write_text("field notes, not a picture")
    truncated = data / "Cultivated" / "cut.png"
    truncated.write_bytes(next((data / "Cultivated").glob("*.png")).read_bytes()[:2000])
    (data / "Developed" / "empty.jpg").write_bytes(b"")
    project = tmp_path / "project"
    result = edgevision("train", str(data), "--project", str(project), "--cache", feature_cache)
    assert result.returncode == 0, result.stderr
    assert "skipped 3 unreadable file(s)" in result.stdout
    metrics = json.loads((project / "iterations" / "1" / "metrics.json").read_text())
    skipped = {Path(s["path"]).name: s["reason"] for s in metrics["skipped"]}
    assert set(skipped) == {"notes.txt", "cut.png", "empty.jpg"}
    assert "0 bytes" in skipped["empty.jpg"]
    assert metrics["images"] == 30
    report = (project / "iterations" / "1" / "report.html").read_text()
    assert "notes.txt" in report and "cut.png" in report
    assert truncated.exists()  # nothing is deleted


def test_unreadable_files_that_leave_too_few_images_fail_before_features(tmp_path: Path) -> None:
    data = copy_mini(tmp_path / "data")
    for image in sorted((data / "Developed").iterdir())[:6]:
        image.write_bytes(b"not an image")
    project = tmp_path / "project"
    result = edgevision("train", str(data), "--project", str(project))
    assert result.returncode == 2
    assert "'Developed' (4 readable)" in result.stderr and "after skipping 6 unreadable" in result.stderr
    assert not project.exists()


@pytest.mark.slow
def test_same_image_under_two_tags_is_reported_and_not_trained_on(tmp_path: Path, feature_cache: str) -> None:
    data = copy_mini(tmp_path / "data")
    twin = sorted((data / "Barren").iterdir())[0]
    shutil.copyfile(twin, data / "Developed" / "looks-developed.png")
    same_tag = sorted((data / "Cultivated").iterdir())[0]
    shutil.copyfile(same_tag, data / "Cultivated" / "again.png")
    project = tmp_path / "project"
    result = edgevision("train", str(data), "--project", str(project), "--cache", feature_cache)
    assert result.returncode == 0, result.stderr
    assert "2 duplicate image(s), 1 under different tags" in result.stdout
    metrics = json.loads((project / "iterations" / "1" / "metrics.json").read_text())
    conflict = next(d for d in metrics["duplicates"] if d["conflict"])
    assert {Path(p).name for p in conflict["paths"]} == {twin.name, "looks-developed.png"}
    assert sorted(conflict["tags"]) == [["Barren"], ["Developed"]]
    repeat = next(d for d in metrics["duplicates"] if not d["conflict"])
    assert {Path(p).name for p in repeat["paths"]} == {same_tag.name, "again.png"}
    # 32 files: the conflicting pair is left out, the repeated picture counts once
    assert metrics["images"] == 29
    assert [t["images"] for t in metrics["tags"]] == [9, 10, 10]


@pytest.mark.parametrize("layout", ["missing", "file"])
def test_missing_data_is_a_clear_error(tmp_path: Path, layout: str) -> None:
    data = tmp_path / "nothing-here"
    if layout == "file":
        data = tmp_path / "labels.csv"
        data.write_text("path,tags\n")
    result = edgevision("train", str(data), "--project", str(tmp_path / "project"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(data) in result.stderr


def test_project_type_cannot_change(tmp_path: Path, trained: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("".join(f"{p},{p.parent.name}\n" for p in sorted(AERIAL_MINI.rglob("*.png"))))
    result = edgevision("train", str(csv), "--project", str(trained))
    assert result.returncode == 2 and "Multiclass project" in result.stderr


def test_classes_fixture_matches_shipped_data() -> None:
    assert sorted(p.name for p in AERIAL_MINI.iterdir() if p.is_dir()) == list(CLASSES)

"""Iterations, tags, the feature cache, publishing and exporting: what a project records on disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgevision.models import load_model
from tests.train.conftest import AERIAL_MINI, CLASSES, edgevision

pytestmark = pytest.mark.slow  # three training runs


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project trained twice on the same data: iteration 1 with flips, iteration 2 with all 8 views."""
    root = tmp_path_factory.mktemp("projects") / "p"
    for augment in ("flip", "dihedral"):
        result = edgevision("train", str(AERIAL_MINI), "--project", str(root), "--augment", augment, "--name", "Land")
        assert result.returncode == 0, result.stderr
    return root


def cache_files(project: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (project / "cache").rglob("*.npy")}


def test_iterations_are_numbered_and_keep_tag_ids(project: Path) -> None:
    result = edgevision("iterations", "--project", str(project), "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    first, second = listing["iterations"]
    assert (first["number"], second["number"]) == (1, 2)
    assert first["id"] != second["id"]
    assert first["projectId"] == second["projectId"] == listing["project"]["id"]
    assert listing["project"]["name"] == "Land"
    assert first["tags"] == second["tags"]
    assert [t["name"] for t in first["tags"]] == list(CLASSES)
    assert first["dataset"]["fingerprint"] == second["dataset"]["fingerprint"]
    assert (first["settings"]["augment"], second["settings"]["augment"]) == ("flip", "dihedral")
    text = edgevision("iterations", "--project", str(project))
    assert text.returncode == 0 and "Land" in text.stdout and len(text.stdout.splitlines()) == 4


def test_model_metadata_names_project_iteration_and_tags(project: Path) -> None:
    info = json.loads((project / "iterations" / "2" / "iteration.json").read_text())
    model = load_model(project / "iterations" / "2" / "model")
    assert model.project_id == info["projectId"]
    assert model.iteration_id == info["id"]
    assert model.labels == list(CLASSES)
    assert model.tag_ids == [t["id"] for t in info["tags"]]
    assert not model.multilabel
    assert model.metadata["CustomVision.Preprocess.ResizeMethod"] == "Stretch"
    assert model.metadata["CustomVision.Postprocess.Method"] == "ClassificationMultiClass"
    assert model.name == "Land-iteration-2"
    manifest = json.loads((project / "iterations" / "2" / "model" / "cvexport.manifest").read_text())
    assert manifest["IterationId"] == info["id"] and manifest["ModelFileSHA256"] == info["model"]["sha256"]


def test_features_are_cached_by_content_and_view(project: Path, tmp_path: Path) -> None:
    before = cache_files(project)
    assert len(before) == 30 * 8  # 30 images x (2 views of iteration 1 + 6 more of iteration 2)
    renamed = tmp_path / "renamed"
    for tag in CLASSES:  # other paths, same pictures: nothing is extracted again
        shutil.copytree(AERIAL_MINI / tag, renamed / f"{tag}")
        for i, image in enumerate(sorted((renamed / tag).iterdir())):
            image.rename(image.with_name(f"copy-{i}.png"))
    result = edgevision("train", str(renamed), "--project", str(project), "--augment", "dihedral")
    assert result.returncode == 0, result.stderr
    assert cache_files(project) == before
    info = json.loads((project / "iterations" / "3" / "iteration.json").read_text())
    assert (
        info["dataset"]["fingerprint"]
        == json.loads((project / "iterations/2/iteration.json").read_text())["dataset"]["fingerprint"]
    )


def test_publish_replace_and_unpublish(project: Path) -> None:
    args = ("publish", "--project", str(project), "--name", "production")
    assert edgevision(*args, "--iteration", "1").returncode == 0
    published = project / "published" / "production"
    assert load_model(published).iteration_id == load_model(project / "iterations/1/model").iteration_id
    again = edgevision(*args, "--iteration", "2")
    assert again.returncode == 2
    assert "already published" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert edgevision(*args, "--iteration", "2", "--replace").returncode == 0
    assert load_model(published).iteration_id == load_model(project / "iterations/2/model").iteration_id
    listing = json.loads(edgevision("iterations", "--project", str(project), "--json").stdout)
    assert [it["published"] for it in listing["iterations"]][:2] == [[], ["production"]]
    assert edgevision("publish", "--project", str(project), "--name", "production", "--unpublish").returncode == 0
    assert not published.exists()
    assert json.loads((project / "project.json").read_text())["published"] == {}


def test_publish_rejects_bad_names_and_missing_iterations(project: Path) -> None:
    bad = edgevision("publish", "--project", str(project), "--iteration", "1", "--name", "../escape")
    assert bad.returncode == 2 and "publish name" in bad.stderr
    missing = edgevision("publish", "--project", str(project), "--iteration", "99", "--name", "x")
    assert missing.returncode == 2 and "no iteration 99" in missing.stderr
    assert not (project / "published" / "x").exists()


def test_export_writes_the_iteration_files(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "device" / "model"
    result = edgevision("export", "--project", str(project), "--iteration", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    source = project / "iterations" / "1" / "model"
    for name in ("model.onnx", "labels.txt", "cvexport.manifest"):
        assert (out / name).read_bytes() == (source / name).read_bytes()
    assert load_model(out).labels == list(CLASSES)
    not_a_project = edgevision("export", "--project", str(tmp_path), "--iteration", "1", "--out", str(out))
    assert not_a_project.returncode == 2 and "not a trainer project" in not_a_project.stderr


def test_settings_from_options_and_environment_are_recorded(tmp_path: Path) -> None:
    project = tmp_path / "p"
    env = {**os.environ, "EDGEVISION_TRAIN_FOLDS": "3", "EDGEVISION_TRAIN_THRESHOLD": "0.2"}
    args = ["train", str(AERIAL_MINI), "--project", str(project), "--resize", "imagenet", "--augment", "none"]
    result = subprocess.run(
        [sys.executable, "-m", "edgevision", *args, "--threshold", "0.9"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    info = json.loads((project / "iterations" / "1" / "iteration.json").read_text())
    assert info["settings"]["folds"] == 3  # from the environment
    assert info["settings"]["threshold"] == 0.9  # the option wins
    assert info["evaluation"]["folds"] == 3 and info["metrics"]["threshold"] == 0.9
    model = load_model(project / "iterations" / "1" / "model")
    assert model.metadata["CustomVision.Preprocess.ResizeMethod"] == "ByShorterSide"
    assert model.metadata["CustomVision.Preprocess.TargetWidth"] == "256.0"
    assert model.metadata["CustomVision.Preprocess.CropMethod"] == "OneCropCenter"
    assert len(cache_files(project)) == 30  # one view per image without augmentation
    bad = edgevision("train", str(AERIAL_MINI), "--project", str(tmp_path / "q"), "--folds", "1")
    assert bad.returncode == 2 and "EDGEVISION_TRAIN_FOLDS" in bad.stderr

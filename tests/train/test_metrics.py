"""Evaluation: metrics.json is complete and self-consistent, AP is computed correctly, the report is
self-contained."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from edgevision.train.metrics import average_precision, evaluate


def load(project: Path, name: str) -> dict:
    return json.loads((project / "iterations" / "1" / name).read_text())


def test_precision_and_recall_follow_from_the_confusion_matrix(trained: Path) -> None:
    metrics = load(trained, "metrics.json")
    matrix = metrics["confusionMatrix"]
    counts = np.array(matrix["counts"])
    assert matrix["rows"] == ["Barren", "Cultivated", "Developed"]
    assert matrix["columns"] == [*matrix["rows"], "(none)"]
    assert counts.sum() == metrics["images"] == 30
    assert counts.sum(axis=1).tolist() == [t["images"] for t in metrics["tags"]] == [10, 10, 10]
    for i, tag in enumerate(metrics["tags"]):
        predicted = counts[:, i].sum()
        assert tag["precision"] == pytest.approx(counts[i, i] / predicted if predicted else 0.0)
        assert tag["recall"] == pytest.approx(counts[i, i] / counts[i].sum())
        assert 0.0 <= tag["averagePrecision"] <= 1.0
    diagonal = np.trace(counts[:, :3])
    assert metrics["precision"] == pytest.approx(diagonal / counts[:, :3].sum())
    assert metrics["recall"] == pytest.approx(diagonal / counts.sum())
    assert metrics["meanAveragePrecision"] == pytest.approx(np.mean([t["averagePrecision"] for t in metrics["tags"]]))
    assert metrics["threshold"] == 0.5
    assert metrics["evaluation"]["folds"] == 5


def test_misclassified_list_matches_the_confusion_matrix(trained: Path) -> None:
    metrics = load(trained, "metrics.json")
    counts = np.array(metrics["confusionMatrix"]["counts"])
    assert len(metrics["misclassified"]) == counts.sum() - np.trace(counts[:, :3])
    for item in metrics["misclassified"]:
        assert item["predicted"] != item["tags"]
        assert Path(item["path"]).is_file()


def test_pr_curves_end_at_full_recall(trained: Path) -> None:
    for tag in load(trained, "metrics.json")["tags"]:
        curve = tag["prCurve"]
        assert len(curve["precision"]) == len(curve["recall"]) == len(curve["threshold"]) >= 1
        assert curve["recall"] == sorted(curve["recall"])
        assert curve["recall"][-1] == 1.0
        assert curve["threshold"] == sorted(curve["threshold"], reverse=True)


def test_iteration_summary_matches_metrics(trained: Path) -> None:
    info = load(trained, "iteration.json")
    metrics = load(trained, "metrics.json")
    for key in ("accuracy", "precision", "recall", "meanAveragePrecision", "threshold"):
        assert info["metrics"][key] == metrics[key]
    assert info["dataset"]["images"] == 30
    assert info["dataset"]["perTag"] == {"Barren": 10, "Cultivated": 10, "Developed": 10}
    assert re.fullmatch(r"[0-9a-f]{64}", info["dataset"]["fingerprint"])
    assert info["settings"]["resize"] == "stretch"


def test_report_is_self_contained(trained: Path) -> None:
    report = (trained / "iterations" / "1" / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 2  # confusion matrix + PR curves
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", report)
    for tag in ("Barren", "Cultivated", "Developed"):
        assert tag in report


def test_average_precision_by_hand() -> None:
    # ranks: hit (P=1, R=.5), miss, hit (P=2/3, R=1) -> AP = .5 * 1 + .5 * 2/3
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1])) == pytest.approx(5 / 6)
    # a tie between a hit and a miss is one threshold, whatever their order
    assert average_precision(np.array([0.9, 0.5, 0.5]), np.array([1, 1, 0])) == pytest.approx(
        average_precision(np.array([0.9, 0.5, 0.5]), np.array([1, 0, 1]))
    )
    assert average_precision(np.array([0.1, 0.9]), np.array([0, 1])) == 1.0


def test_threshold_moves_unsure_predictions_to_none() -> None:
    probabilities = np.array([[0.6, 0.4], [0.45, 0.55], [0.9, 0.1]])
    targets = np.array([[1, 0], [0, 1], [0, 1]])
    strict = evaluate(probabilities, targets, ["a", "b"], multilabel=False, threshold=0.58)
    assert strict["confusionMatrix"]["counts"] == [[1, 0, 0], [1, 0, 1]]
    assert strict["tags"][1]["recall"] == 0.0
    assert strict["tags"][0]["precision"] == 0.5
    assert strict["accuracy"] == pytest.approx(2 / 3)  # top-1 ignores the threshold

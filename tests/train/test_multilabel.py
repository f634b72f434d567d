"""Multi-label training from a CSV: `;`-separated tags (names may hold spaces), negatives, sigmoid export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgevision.models import load_model
from tests.train.conftest import AERIAL_MINI, edgevision, held_out_tiles

TAGS = {"Barren": "Negative", "Cultivated": "Cultivated; open land", "Developed": "Developed"}


@pytest.fixture(scope="module")
def project(tmp_path_factory, feature_cache: str) -> Path:
    root = tmp_path_factory.mktemp("multilabel")
    lines = ["path,tags"]
    for i, image in enumerate(sorted(AERIAL_MINI.rglob("*.png"))):
        tags = TAGS[image.parent.name]
        if tags == "Negative" and i % 2:
            tags = ""  # an empty cell is a negative too
        lines.append(f'"{image.relative_to(AERIAL_MINI)}","{tags}"')
    lines.append("Barren/missing.png,Developed")
    csv = root / "labels.csv"
    for tag in TAGS:  # paths in the CSV are relative to its folder
        (root / tag).symlink_to(AERIAL_MINI / tag)
    csv.write_text("\n".join(lines) + "\n")
    result = edgevision("train", str(csv), "--project", str(root / "project"), "--cache", feature_cache)
    assert result.returncode == 0, result.stderr
    return root / "project"


@pytest.mark.slow
def test_multilabel_metrics_are_per_tag(project: Path) -> None:
    metrics = json.loads((project / "iterations" / "1" / "metrics.json").read_text())
    assert metrics["classificationType"] == "Multilabel"
    assert [t["tag"] for t in metrics["tags"]] == ["Cultivated", "Developed", "open land"]
    assert metrics["images"] == 30
    totals = np.zeros(3)
    for tag in metrics["tags"]:
        (tn, fp), (fn, tp) = metrics["confusionMatrix"]["perTag"][tag["tag"]]
        assert tn + fp + fn + tp == 30
        assert tp + fn == tag["images"] == 10
        assert tag["precision"] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
        assert tag["recall"] == pytest.approx(tp / (tp + fn))
        totals += (tp, fp, fn)
    assert metrics["precision"] == pytest.approx(totals[0] / (totals[0] + totals[1]))
    assert metrics["recall"] == pytest.approx(totals[0] / (totals[0] + totals[2]))
    info = json.loads((project / "iterations" / "1" / "iteration.json").read_text())
    assert info["dataset"]["perTag"] == {"Cultivated": 10, "Developed": 10, "open land": 10, "Negative": 10}
    assert [Path(s["path"]).name for s in metrics["skipped"]] == ["missing.png"]


@pytest.mark.slow
def test_multilabel_model_scores_tags_independently(project: Path) -> None:
    model = load_model(project / "iterations" / "1" / "model")
    assert model.multilabel
    assert model.metadata["CustomVision.Postprocess.Method"] == "ClassificationMultiLabel"
    tiles = held_out_tiles()
    expected = {"Barren": set(), "Cultivated": {"Cultivated", "open land"}, "Developed": {"Developed"}}
    for name, tile in tiles.items():
        scores = {p.tag_name: p.probability for p in model.predict(tile.read_bytes())}
        assert {tag for tag, p in scores.items() if p >= 0.5} == expected[name], (name, scores)


def test_multilabel_int8_export_keeps_independent_scores(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8"
    result = edgevision(
        "export", "--project", str(project), "--iteration", "1", "--out", str(out), "--quantize", "int8"
    )
    assert result.returncode == 0, result.stderr
    int8, fp32 = load_model(out), load_model(project / "iterations" / "1" / "model")
    assert int8.multilabel and int8.labels == fp32.labels
    for tile in sorted(AERIAL_MINI.rglob("*.png"))[::5]:
        above = [{p.tag_name for p in m.predict(tile.read_bytes()) if p.probability >= 0.5} for m in (fp32, int8)]
        assert above[0] == above[1], tile.name
    entry = json.loads((project / "iterations" / "1" / "metrics.json").read_text())["quantized"]["int8"]
    assert [t["tag"] for t in entry["tags"]] == ["Cultivated", "Developed", "open land"]
    assert entry["images"] == 30 and entry["floatAccuracy"] == pytest.approx(
        json.loads((project / "iterations" / "1" / "metrics.json").read_text())["accuracy"]
    )

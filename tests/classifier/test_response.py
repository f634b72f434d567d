"""The fast JSON writer writes byte for byte what the `ImagePrediction` contract writes, in the core's ranking order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgevision.classifier.response import PredictionWriter
from edgevision.contracts import ImagePrediction, dumps, parse
from edgevision.models import load_model
from tests.conftest import shared_path


@pytest.mark.parametrize("source", ["default", "cat-or-dog"])
def test_writer_matches_the_core_and_json_dumps(source: str) -> None:
    folder = None if source == "default" else shared_path(f"models/customvision-exports/{source}")
    model = load_model(folder)
    rng = np.random.default_rng(7)
    probabilities = rng.random(len(model.labels)).astype(np.float32)
    probabilities[: len(probabilities) // 2] = probabilities[-1]  # ties keep label order
    writer = PredictionWriter()
    for limit in (0, 2):
        text = writer.body(model, probabilities, limit)
        body = json.loads(text)
        ranked = model.predictions(probabilities)[: limit or None]
        contract = ImagePrediction(
            id=body["id"],
            project=model.project_id,
            iteration=model.iteration_id,
            created=parse(ImagePrediction, text).created,
            predictions=[p.contract() for p in ranked],
        )
        assert text == dumps(contract)  # byte for byte: field order, float reprs, escaping, time format


def test_writer_escapes_tag_names(tmp_path) -> None:
    from edgevision.models import DEFAULT_MODEL_DIR

    labels = [f'tag "{i}" \\ ü\n' for i in range(1000)]
    (tmp_path / "model.onnx").symlink_to(DEFAULT_MODEL_DIR / "model.onnx")
    (tmp_path / "labels.txt").write_text("\n".join(label.strip() for label in labels) + "\n", encoding="utf-8")
    model = load_model(tmp_path)
    text = PredictionWriter().body(model, np.linspace(0, 1, 1000, dtype=np.float32))
    assert json.loads(text)["predictions"][0]["tagName"] == 'tag "999" \\ ü'
    assert text == dumps(parse(ImagePrediction, text))

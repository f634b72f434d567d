"""The fast JSON writer answers what the `ImagePrediction` contract writes, in the core's ranking order: the same
fields, tags and order, and probabilities that parse back to exactly the model's float32 values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgevision.classifier.response import WIDTH, PredictionWriter, float32_texts
from edgevision.contracts import ImagePrediction, dumps, parse
from edgevision.models import ImageModel, load_model
from tests.conftest import shared_path

# Edge values: 0, 1, the smallest and largest subnormals, the smallest normal, every power of two (their
# decimal expansions end in 5, so 9-digit rounding meets exact ties), powers of ten and both sides of the
# 1e-4 switch between positional and scientific texts.
TINY = np.finfo(np.float32)
EDGES = np.array(
    [0.0, 1.0, TINY.smallest_subnormal, TINY.smallest_normal - TINY.smallest_subnormal, TINY.smallest_normal]
    + [2.0**-k for k in range(1, 150)]
    + [10.0**-k for k in range(1, 38)]
    + [0.5, 0.25, 0.1, 1e-4, 0.999999]
    + [np.nextafter(np.float32(v), np.float32(d)) for v in (1e-4, 1e-5, 1.0, 0.1) for d in (0, 1)],
    dtype=np.float32,
)


def reference(model: ImageModel, probabilities: np.ndarray, limit: int, text: str) -> str:
    """What `json.dumps` of the contract writes for the same values (id and time taken from `text`)."""
    written = parse(ImagePrediction, text)
    ranked = model.predictions(probabilities)[: limit or None]
    contract = ImagePrediction(
        id=written.id,
        project=model.project_id,
        iteration=model.iteration_id,
        created=written.created,
        predictions=[p.contract() for p in ranked],
    )
    return dumps(contract)


def assert_same_answer(text: str, expected: str, probabilities: np.ndarray) -> None:
    body, wanted = json.loads(text), json.loads(expected)
    assert list(body) == list(wanted) and {k: body[k] for k in body if k != "predictions"} == {
        k: wanted[k] for k in wanted if k != "predictions"
    }
    fields = ["tagName", "tagId", "boundingBox"]
    assert [list(p) for p in body["predictions"]] == [list(p) for p in wanted["predictions"]]
    assert [[p[f] for f in fields] for p in body["predictions"]] == [
        [p[f] for f in fields] for p in wanted["predictions"]
    ]
    got = np.array([p["probability"] for p in body["predictions"]], dtype=np.float32)
    want = np.array([p["probability"] for p in wanted["predictions"]], dtype=np.float32)
    assert np.array_equal(got, want) and set(got.tolist()) <= set(probabilities.tolist())


@pytest.mark.parametrize("source", ["default", "cat-or-dog"])
def test_writer_matches_the_core_and_the_contract(source: str) -> None:
    folder = None if source == "default" else shared_path(f"models/customvision-exports/{source}")
    model = load_model(folder)
    rng = np.random.default_rng(7)
    probabilities = rng.random(len(model.labels)).astype(np.float32)
    probabilities[: len(probabilities) // 2] = probabilities[-1]  # ties keep label order
    writer = PredictionWriter()
    for limit in (0, 2):
        text = writer.body(model, probabilities, limit)
        assert_same_answer(text, reference(model, probabilities, limit, text), probabilities)


def test_edge_values_and_ties_parse_back_to_the_models_float32(tmp_path) -> None:
    model = load_model(None)
    probabilities = np.zeros(len(model.labels), np.float32)
    probabilities[: len(EDGES)] = EDGES
    probabilities[len(EDGES) :: 2] = EDGES[len(EDGES) // 2]  # equal values: label order
    text = PredictionWriter().body(model, probabilities)
    assert_same_answer(text, reference(model, probabilities, 0, text), probabilities)


def test_float32_texts_round_trip_every_kind_of_float32() -> None:
    rng = np.random.default_rng(3)
    bits = rng.integers(0, np.float32(1.0).view(np.uint32), 200_000, dtype=np.uint32, endpoint=True)
    values = np.concatenate([EDGES, bits.view(np.float32)])
    texts = float32_texts(values)
    assert np.array_equal(np.array([float(t) for t in texts], dtype=np.float32), values)
    assert all(len(t) <= WIDTH and isinstance(json.loads(t), float) for t in texts)
    assert float32_texts(np.array([0, 1, 0.5, 0.25, 1e-4, 2.0**-20], np.float32)) == [
        "0.0",
        "1.0",
        "0.5",
        "0.25",
        "9.99999975e-05",
        "9.53674316e-07",
    ]


def test_a_float64_vector_keeps_the_float_repr_of_json_dumps() -> None:
    model = load_model(None)
    probabilities = np.random.default_rng(5).random(1000)  # 9 digits would not carry a float64
    text = PredictionWriter().body(model, probabilities)
    assert text == reference(model, probabilities, 0, text)  # byte for byte


def test_writer_escapes_tag_names(tmp_path) -> None:
    from edgevision.models import DEFAULT_MODEL_DIR

    labels = [f'tag "{i}" \\ ü\n' for i in range(1000)]
    (tmp_path / "model.onnx").symlink_to(DEFAULT_MODEL_DIR / "model.onnx")
    (tmp_path / "labels.txt").write_text("\n".join(label.strip() for label in labels) + "\n", encoding="utf-8")
    model = load_model(tmp_path)
    probabilities = np.linspace(0, 1, 1000, dtype=np.float32)
    text = PredictionWriter().body(model, probabilities)
    assert json.loads(text)["predictions"][0]["tagName"] == 'tag "999" \\ ü'
    assert_same_answer(text, reference(model, probabilities, 0, text), probabilities)

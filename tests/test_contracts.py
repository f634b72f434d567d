"""The contracts: each model accepts what its writer writes, rejects what it must, and the docs show them."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from edgevision import contracts
from edgevision.contracts import (
    CameraResult,
    CaptureEvent,
    CaptureSidecar,
    ContractError,
    DisplayInput,
    ErrorBody,
    ImagePrediction,
    Prediction,
    as_prediction,
    dumps,
    encode,
    parse,
    read_answer,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
WHEN = datetime(2026, 12, 2, 10, 30, 5, 123456, tzinfo=timezone.utc)
PREDICTIONS = [Prediction(tagName="zebra", probability=0.8, tagId="t1"), Prediction(tagName="dik-dik", probability=0)]
ANSWER = {"id": "a1", "project": "p", "iteration": "i", "created": WHEN, "predictions": PREDICTIONS}
FRAME = {"source": "clip.avi", "frame": 7, "capturedAt": WHEN, "modelId": "m@1"}
TOP = {"topTag": "zebra", "topProbability": 0.8}
SIDECAR = {**FRAME, **TOP, "videoTime": 1.4, "width": 640, "height": 480, "matchedTag": "zebra"}
SAMPLES: list[contracts.Contract] = [
    ImagePrediction(**ANSWER),
    CameraResult(**ANSWER, **TOP, **FRAME),
    DisplayInput(predictions=PREDICTIONS),
    CaptureSidecar(**SIDECAR, matchedProbability=0.8, predictions=PREDICTIONS, file="x.jpg"),
    CaptureEvent(**FRAME, **TOP, file="2026-12-02/x.jpg", sidecar="2026-12-02/x.json", matchedTag="zebra"),
    ErrorBody(code="BadRequestImageFormat", message="not an image"),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_every_message_round_trips_as_dict_and_as_text(sample: contracts.Contract) -> None:
    model = type(sample)
    assert encode(parse(model, encode(sample))) == encode(sample)
    assert dumps(parse(model, dumps(sample))) == dumps(sample)
    assert dumps(parse(model, dumps(sample, indent=1, ensure_ascii=False).encode())) == dumps(sample)


def test_times_keep_their_writers_precision() -> None:
    body = encode(CameraResult(**ANSWER, **TOP, **FRAME))
    assert body["created"] == "2026-12-02T10:30:05.123456Z"  # the scorer's: microseconds
    assert body["capturedAt"] == "2026-12-02T10:30:05.123Z"  # the camera's: milliseconds
    # Custom Vision's cloud writes local-less times without a zone; they are read and written back as they are.
    cloud = parse(ImagePrediction, {**encode(ImagePrediction(**ANSWER)), "created": "2019-12-10T04:37:49.657555"})
    assert encode(cloud)["created"] == "2019-12-10T04:37:49.657555"


def test_readers_ignore_fields_they_do_not_know() -> None:
    body = {**encode(ImagePrediction(**ANSWER)), "newField": 1}
    assert parse(ImagePrediction, body) == ImagePrediction(**ANSWER)
    assert parse(DisplayInput, encode(CameraResult(**ANSWER, **TOP, **FRAME))).predictions == PREDICTIONS


def _changed(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    body = {**body, "predictions": [dict(p) for p in body.get("predictions", [])]}
    *parents, last = path.split(".")
    target: Any = body
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return body


MISMATCHES = [
    (ImagePrediction, "predictions.0.probability", 1.5, "predictions.0.probability: Input should be less than"),
    (ImagePrediction, "predictions.0.probability", True, "predictions.0.probability: Input should be a valid"),
    (ImagePrediction, "predictions.0.probability", "0.5", "predictions.0.probability: Input should be a valid"),
    (ImagePrediction, "predictions.0.tagName", 3, "predictions.0.tagName: Input should be a valid string"),
    (ImagePrediction, "predictions", {"zebra": 1}, "predictions: Input should be a valid list"),
    (ImagePrediction, "created", "yesterday", "created: Input should be a valid datetime"),
    (ImagePrediction, "id", ..., "id: Field required"),
    (CameraResult, "frame", -1, "frame: Input should be greater than or equal to 0"),
    (CameraResult, "topProbability", float("nan"), "topProbability: Input should be a finite number"),
    (CameraResult, "modelId", ..., "modelId: Field required"),
    (DisplayInput, "predictions", ..., "predictions: Field required"),
    (CaptureSidecar, "matchedTag", None, "matchedTag: Input should be a valid string"),
    (CaptureEvent, "event", "deleted", "event: Input should be 'capture'"),
    (ErrorBody, "code", ..., "code: Field required"),
]


@pytest.mark.parametrize(("model", "path", "value", "reason"), MISMATCHES)
def test_a_mismatch_is_one_contract_error_naming_the_field(model, path: str, value: Any, reason: str) -> None:
    sample = next(s for s in SAMPLES if type(s) is model)
    with pytest.raises(ContractError) as caught:
        parse(model, _changed(encode(sample), path, value))
    message = str(caught.value)
    assert message.startswith(f"not a valid {model.__name__}: {reason}") and "\n" not in message


def test_the_camera_s_answer_reader_checks_by_the_same_rules_as_the_model() -> None:
    # read_answer: the scorer's answer as plain entries (no model objects per entry), the same contract
    body = encode(ImagePrediction(**ANSWER))
    body["predictions"] = [{**body["predictions"][0], "newField": 1}, {"tagName": "dik-dik", "probability": 0}]
    answer = read_answer(json.dumps(body).encode())
    assert answer["predictions"][0] == {"tagName": "zebra", "probability": 0.8, "tagId": "t1", "boundingBox": None}
    assert [as_prediction(p) for p in answer["predictions"]] == parse(ImagePrediction, body).predictions
    assert {k: v for k, v in answer.items() if k != "predictions"} == {
        "id": "a1",
        "project": "p",
        "iteration": "i",
        "created": WHEN,
    }
    wrong = [
        json.dumps(_changed(body, path, value)) for model, path, value, _ in MISMATCHES if model is ImagePrediction
    ]
    for data in [*wrong, b"{not json", b"[1]", b"3", b""]:
        with pytest.raises(ContractError) as caught:
            read_answer(data)
        with pytest.raises(ContractError) as expected:
            parse(ImagePrediction, data)
        assert str(caught.value) == str(expected.value)


@pytest.mark.parametrize("data", [None, [], "[1]", b"{not json", "", 3])
def test_what_is_not_an_object_is_a_contract_error_too(data: Any) -> None:
    with pytest.raises(ContractError, match="not a valid DisplayInput"):
        parse(DisplayInput, data)


def test_the_docs_show_the_generated_field_tables() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert contracts.markdown() in text, "run: python scripts/contracts_doc.py"
    for model in contracts.MESSAGES.values():
        assert model.__doc__, model.__name__
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_the_fast_writers_prediction_entry_is_the_contracts() -> None:
    from edgevision.models.model import Prediction as CorePrediction

    entry = CorePrediction("zebra", 0.25, "t1").to_json()
    assert entry == {"tagName": "zebra", "probability": 0.25, "tagId": "t1", "boundingBox": None}
    assert list(entry) == list(Prediction.model_fields)  # the order the fast writer writes

"""The camera's scorer client: real answers parsed, and every way a scorer can fail turned into one error."""

from __future__ import annotations

import pytest

from edgevision.backoff import Backoff
from edgevision.capture.scorer import ScorerClient, ScorerError
from tests.capture.conftest import DOG
from tests.conftest import ScoringService, free_port


def test_a_real_answer_is_sorted_and_carries_the_model_id(scoring_service: ScoringService, model_id: str) -> None:
    client = ScorerClient(f"{scoring_service.url}/image", params={"application": "camera"}, timeout=30)
    scored = client.score(DOG.read_bytes())
    client.close()
    probabilities = [p["probability"] for p in scored.ranked]
    assert len(probabilities) == 1000 and probabilities == sorted(probabilities, reverse=True)
    assert scored.top is not None and scored.top.tagName == "malamute"
    assert scored.model_id == model_id
    assert scored.answer["predictions"] and scored.answer["created"].tzinfo is not None


@pytest.mark.parametrize(
    ("path", "transient", "rejected", "message"),
    [
        ("/html", False, True, "not a valid ImagePrediction: body: Invalid JSON"),
        ("/shape", False, True, "not a valid ImagePrediction: id: Field required"),
        ("/over-one", False, True, "predictions.0.probability: Input should be less than or equal to 1"),
        ("/crash", True, False, "HTTP 500: model exploded"),
        ("/reject", False, False, "HTTP 400: not an image"),
        ("/slow", True, False, "REQUEST_TIMEOUT"),
    ],
)
def test_a_misbehaving_scorer_is_one_error(
    bad_scorer: str, path: str, transient: bool, rejected: bool, message: str
) -> None:
    client = ScorerClient(bad_scorer + path, timeout=0.5)
    with pytest.raises(ScorerError, match=message) as caught:
        client.score(b"\xff\xd8 not really a jpeg \xff\xd9")
    assert caught.value.transient is transient
    assert caught.value.rejected is rejected


def test_an_unreachable_scorer_is_a_transient_error() -> None:
    client = ScorerClient(f"http://127.0.0.1:{free_port()}/image", timeout=1)
    with pytest.raises(ScorerError, match="cannot reach") as caught:
        client.score(DOG.read_bytes())
    assert caught.value.transient


def test_backoff_doubles_up_to_its_maximum_and_resets() -> None:
    backoff = Backoff(maximum=3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5

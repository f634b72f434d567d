"""Which scored frames become messages (SEND_MODE), and what the messages say (docs/architecture.md)."""

from __future__ import annotations

import pytest

from edgevision.capture.reporting import SendPolicy, top_n
from edgevision.capture.settings import CaptureSettings
from edgevision.contracts import Prediction


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(**env: str) -> CaptureSettings:
    return CaptureSettings.from_env({"VIDEO_PATH": "0", **env})


def run(policy: SendPolicy, clock: Clock, config: CaptureSettings, tags: list[str], step: float) -> list[str]:
    """Feed one frame per `step` seconds; returns the tags that were sent."""
    sent = []
    for tag in tags:
        if policy.should_send(config, tag):
            policy.sent(tag)
            sent.append(tag)
        clock.now += step
    return sent


TAGS = ["deer", "deer", "deer", "person", "person", "deer", "deer", "dog", "dog", "dog"]


def test_every_frame_but_never_closer_than_the_minimum_interval() -> None:
    clock = Clock()
    assert run(SendPolicy(clock), clock, settings(SEND_MODE="every", MIN_SEND_INTERVAL="0"), TAGS, 1.0) == TAGS
    clock = Clock()
    sent = run(SendPolicy(clock), clock, settings(SEND_MODE="every", MIN_SEND_INTERVAL="3"), TAGS, 1.0)
    assert sent == TAGS[::3]


def test_on_change_sends_each_change_of_the_top_tag() -> None:
    clock = Clock()
    sent = run(SendPolicy(clock), clock, settings(SEND_MODE="on-change", MIN_SEND_INTERVAL="0"), TAGS, 1.0)
    assert sent == ["deer", "person", "deer", "dog"]


def test_on_change_with_a_minimum_interval_drops_flicker_but_not_lasting_changes() -> None:
    config = settings(SEND_MODE="on-change", MIN_SEND_INTERVAL="2.5")
    clock = Clock()
    flicker = ["deer", "deer", "deer", "person", "deer", "person", "person", "person"]
    assert run(SendPolicy(clock), clock, config, flicker, 1.0) == ["deer", "person"]
    clock = Clock()
    lasting = ["deer", "person", "person", "person", "deer", "deer", "deer", "deer"]
    assert run(SendPolicy(clock), clock, config, lasting, 1.0) == ["deer", "person", "deer"]


def test_interval_mode_sends_on_a_schedule_whatever_the_tags() -> None:
    clock = Clock()
    config = settings(SEND_MODE="interval", SEND_INTERVAL="3.5", MIN_SEND_INTERVAL="0")
    assert run(SendPolicy(clock), clock, config, TAGS, 1.0) == [TAGS[0], TAGS[4], TAGS[8]]


@pytest.mark.parametrize(
    ("n", "keep", "expected"), [(2, None, ["a", "b"]), (2, "d", ["a", "b", "d"]), (0, None, list("abcd"))]
)
def test_top_n_keeps_the_matched_tag(n: int, keep: str | None, expected: list[str]) -> None:
    ranked = [{"tagName": t, "probability": p} for t, p in zip("abcd", (0.5, 0.3, 0.15, 0.05), strict=True)]
    kept = top_n(ranked, n, keep)
    assert [p.tagName for p in kept] == expected
    # the models a message carries, with the defaults of fields the entries left out
    assert kept[0] == Prediction(tagName="a", probability=0.5, tagId="", boundingBox=None)

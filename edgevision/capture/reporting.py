"""What the camera tells IoT Edge: `output1` results (not every frame: SEND_MODE) and `captures` events.

Message shapes are the models in `edgevision.contracts` (field tables in docs/architecture.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from edgevision.capture.scorer import Scored
from edgevision.capture.settings import CaptureSettings, SendMode
from edgevision.capture.sources import Frame
from edgevision.contracts import (
    CAPTURES_OUTPUT,
    RESULTS_OUTPUT,
    CameraResult,
    CaptureEvent,
    CaptureSidecar,
    Prediction,
    as_prediction,
    encode,
)
from edgevision.hub import Hub


class SendPolicy:
    """Decides which scored frames become `output1` messages.

    - `every`: each frame, but never two messages closer than MIN_SEND_INTERVAL;
    - `on-change`: when the top tag differs from the last one *sent* (so a change held back by the minimum
      interval still goes out on a later frame if it lasts);
    - `interval`: one message every SEND_INTERVAL seconds (at least MIN_SEND_INTERVAL).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last_sent_at: float | None = None
        self._last_tag: str | None = None

    def should_send(self, settings: CaptureSettings, top_tag: str) -> bool:
        now = self._clock()
        since = None if self._last_sent_at is None else now - self._last_sent_at
        if since is not None and since < settings.min_send_interval:
            return False
        if settings.send_mode is SendMode.ON_CHANGE:
            return top_tag != self._last_tag
        if settings.send_mode is SendMode.INTERVAL:
            return since is None or since >= settings.send_interval
        return True

    def sent(self, top_tag: str) -> None:
        self._last_sent_at = self._clock()
        self._last_tag = top_tag


def top_n(ranked: Sequence[dict[str, Any]], n: int, keep: str | None = None) -> list[Prediction]:
    """The first `n` of the ranked entries (0 = all), plus the one tagged `keep` if it fell outside them, as
    the `Prediction` models a message carries."""
    kept = list(ranked[:n] if n else ranked)
    if keep and len(ranked) > len(kept) and all(p["tagName"] != keep for p in kept):
        kept += [p for p in ranked if p["tagName"] == keep][:1]
    return [as_prediction(p) for p in kept]


def result_body(scored: Scored, frame: Frame, source: str, settings: CaptureSettings) -> CameraResult:
    """The `output1` body: the scorer's response (predictions cut to MESSAGE_TOP_N) plus what the frame was."""
    top = scored.top or Prediction(tagName="", probability=0.0)
    return CameraResult(
        **{name: value for name, value in scored.answer.items() if name != "predictions"},
        predictions=top_n(scored.ranked, settings.message_top_n),
        topTag=top.tagName,
        topProbability=top.probability,
        source=source,
        frame=frame.index,
        capturedAt=frame.captured_at,
        modelId=scored.model_id,
    )


def sidecar(
    scored: Scored, frame: Frame, source: str, matched: Prediction, settings: CaptureSettings
) -> CaptureSidecar:
    """What is stored beside a captured JPEG."""
    top = scored.top or matched
    width, height = frame.size
    return CaptureSidecar(
        capturedAt=frame.captured_at,
        source=source,
        frame=frame.index,
        videoTime=round(frame.timestamp, 3),
        width=width,
        height=height,
        matchedTag=matched.tagName,
        matchedProbability=matched.probability,
        topTag=top.tagName,
        topProbability=top.probability,
        modelId=scored.model_id,
        predictions=top_n(scored.ranked, settings.message_top_n, keep=matched.tagName),
    )


def send_result(hub: Hub, body: CameraResult) -> None:
    hub.send(RESULTS_OUTPUT, encode(body), body.properties())


def send_capture(hub: Hub, event: CaptureEvent) -> None:
    hub.send(CAPTURES_OUTPUT, encode(event), event.properties())

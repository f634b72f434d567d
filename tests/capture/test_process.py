"""`edgevision capture` as a real process, as the container runs it: a plain local run, a scorer that goes
away and comes back, and kill -9 in the middle of capturing."""

from __future__ import annotations

import ast
import io
import itertools
import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from edgevision.capture.store import CaptureStore
from edgevision.demo.slideshow import Slideshow
from tests.capture.conftest import ZEBRAS_1, ZEBRAS_2, ModuleProcess, status
from tests.conftest import ScoringService, free_port, shared_path, wait_until

SENT = re.compile(r"camera-capture -> (output1|captures) (\{.*?\}) ")


def sent(log: str, output: str) -> list[dict[str, str]]:
    """The custom properties of every message the LocalHub logged for `output`."""
    return [ast.literal_eval(props) for name, props in SENT.findall(log) if name == output]


def test_a_local_run_logs_results_stores_captures_and_exits_0_at_the_end(
    start_module: Callable[..., ModuleProcess], scoring_service: ScoringService, slideshow: Slideshow, tmp_path: Path
) -> None:
    captures = tmp_path / "captures"
    module = start_module(
        video_path=slideshow,
        loop_video="False",
        image_processing_endpoint=f"{scoring_service.url}/image",
        capture_tags="zebra",
        capture_cooldown=0,
        capture_dir=captures,
        send_mode="on-change",
        min_send_interval=0,
    )
    assert module.wait(60) == 0, module.log
    log = module.log
    assert "no IoT Edge environment" in log
    results = sent(log, "output1")
    assert results and all(set(p) == {"topTag", "topProbability"} for p in results)
    assert all(a["topTag"] != b["topTag"] for a, b in itertools.pairwise(results))  # on-change
    zebra_frames = [*slideshow.frames_of(ZEBRAS_1), *slideshow.frames_of(ZEBRAS_2)]
    assert len(sent(log, "captures")) == len(zebra_frames)
    assert sorted(json.loads(p.read_text())["frame"] for p in captures.rglob("*.json")) == zebra_frames
    assert f"capture finished: {slideshow.frame_count} frames, {slideshow.frame_count} scored, 0 errors" in log


@pytest.mark.slow
def test_the_scorer_stopping_and_coming_back_does_not_stop_the_module(
    start_module: Callable[..., ModuleProcess], tmp_path: Path
) -> None:
    video = shared_path("media/video/vtest.avi")
    scorer = ScoringService()  # stop() and start() keep its port
    viewer = free_port()
    try:
        module = start_module(
            video_path=video,
            loop_video="yes",
            image_processing_endpoint=f"{scorer.url}/image",
            max_backoff=0.5,
            request_timeout=5,
            show_video="true",  # its /api/status shows the counters
            viewer_port=viewer,
            capture_tags="person",
            capture_dir=tmp_path / "captures",
        )
        before = wait_until(lambda: (s := status(viewer)) and s["stats"]["scored"] >= 5 and s, 60, "frames scored")
        scorer.stop()
        during = wait_until(lambda: (s := status(viewer)) and s["stats"]["errors"] >= 4 and s, 60, "errors counted")
        assert module.alive()
        assert "scorer" in during["lastError"]
        scorer.start()  # same port
        after = wait_until(
            lambda: (s := status(viewer)) and s["stats"]["scored"] >= during["stats"]["scored"] + 10 and s,
            60,
            "frames scored again",
        )
        assert module.alive() and after["lastError"] == ""
        assert after["stats"]["scored"] > before["stats"]["scored"]
        # A file loses no frame to the outage: the failed frame was retried, not skipped.
        assert after["stats"]["frames"] - after["stats"]["scored"] <= 1
        module.signal(signal.SIGTERM)
        assert module.wait(30) == 0
        log = module.log
        assert "retrying in" in log and "scorer answering again" in log
        assert "Traceback" not in log
    finally:
        scorer.close()


def assert_no_partial_capture(root: Path) -> int:
    """Every .jpg decodes completely and has its sidecar; returns how many there are."""
    jpegs = sorted(root.rglob("*.jpg"))
    for jpeg in jpegs:
        data = jpeg.read_bytes()
        assert data.endswith(b"\xff\xd9"), f"truncated {jpeg}"
        Image.open(io.BytesIO(data)).load()
        assert json.loads(jpeg.with_suffix(".json").read_text())["file"] == jpeg.name
    return len(jpegs)


@pytest.mark.slow
def test_kill_9_during_capture_leaves_no_partial_file(
    start_module: Callable[..., ModuleProcess], scoring_service: ScoringService, slideshow: Slideshow, tmp_path: Path
) -> None:
    captures = tmp_path / "captures"
    env = {
        "video_path": slideshow,
        "loop_video": "1",
        "image_processing_endpoint": f"{scoring_service.url}/image",
        "capture_tags": "*",  # every frame is a capture: the kill lands among writes
        "capture_threshold": 0,
        "capture_cooldown": 0,
        "jpeg_quality": 100,
        "capture_dir": captures,
    }
    for round_ in range(3):
        module = start_module(**env)
        target = assert_no_partial_capture(captures) + 2 + 3 * round_
        wait_until(lambda: len(list(captures.rglob("*.jpg"))) >= target, 60, "captures")  # noqa: B023
        # Aim for the middle of a write (it may already be over: the invariant must hold either way).
        deadline = time.monotonic() + 1
        while not any(captures.rglob(".*.tmp")) and time.monotonic() < deadline:
            pass
        module.signal(signal.SIGKILL)
        module.wait(10)
        assert_no_partial_capture(captures)
        leftovers = [p for p in captures.rglob("*") if p.is_file() and p.suffix not in {".jpg", ".json", ".tmp"}]
        assert not leftovers
    # What the next start finds: only complete captures, temp files and orphan sidecars cleared.
    store = CaptureStore(captures)
    assert not list(captures.rglob(".*.tmp"))
    assert len(store) == assert_no_partial_capture(captures) == len(list(captures.rglob("*.json")))

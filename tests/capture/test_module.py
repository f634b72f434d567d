"""The frame loop against the real scoring service, in-process with a recording hub: what is stored, what is
sent, cooldown, retention, and the module twin."""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from edgevision.capture.module import CaptureModule
from edgevision.capture.settings import CaptureSettings
from edgevision.capture.store import CaptureStore
from edgevision.contracts import CAMERA_OUTPUTS, CAPTURES_OUTPUT, CaptureSidecar, encode, parse
from edgevision.demo.slideshow import Slideshow
from tests.capture.conftest import DOG, ELEPHANTS, ZEBRAS_1, ZEBRAS_2, RecordingHub, sample_sidecar, settings_for
from tests.conftest import ScoringService, fill_disk

CONTRACT_KEYS = {"id", "project", "iteration", "created", "predictions"}
CONTRACT_KEYS |= {"topTag", "topProbability", "source", "frame", "capturedAt", "modelId"}


@dataclass
class Run:
    module: CaptureModule
    hub: RecordingHub
    captures: Path

    def stored(self) -> dict[int, dict[str, Any]]:
        """Frame number -> sidecar of every stored JPEG."""
        return {
            (record := json.loads(jpeg.with_suffix(".json").read_text("utf-8")))["frame"]: record
            for jpeg in sorted(self.captures.rglob("*.jpg"))
        }


def run_module(settings: CaptureSettings, hub: RecordingHub | None = None) -> Run:
    hub = hub or RecordingHub()
    module = CaptureModule(settings, hub)
    assert module.run() == 0
    return Run(module, hub, settings.capture_dir)


def test_the_bundled_model_knows_the_photos(scoring_service: ScoringService) -> None:
    """The facts the other tests rely on, checked on the real service rather than assumed."""
    for photo, tag in [(DOG, "malamute"), (ELEPHANTS, "African elephant"), (ZEBRAS_1, "zebra"), (ZEBRAS_2, "zebra")]:
        answer = requests.post(f"{scoring_service.url}/image", data=photo.read_bytes(), timeout=30).json()
        top = max(answer["predictions"], key=lambda p: p["probability"])
        assert top["tagName"] == tag, photo.name
        assert top["probability"] >= 0.5


@pytest.fixture(scope="module")
def every_run(scoring_service: ScoringService, slideshow: Slideshow, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The slideshow once through, every frame sent, zebras captured, frames resized for the scorer."""
    settings = settings_for(
        scoring_service.url,
        slideshow,
        send_mode="every",
        min_send_interval=0,
        capture_tags="zebra",
        capture_threshold=0.5,
        capture_cooldown=0,
        capture_dir=tmp_path_factory.mktemp("captures"),
        resize_width=320,
    )
    return run_module(settings)


def test_only_frames_with_the_capture_tag_are_stored(every_run: Run, slideshow: Slideshow) -> None:
    stored = every_run.stored()
    assert sorted(stored) == [*slideshow.frames_of(ZEBRAS_1), *slideshow.frames_of(ZEBRAS_2)]
    for frame, record in stored.items():
        assert record["matchedTag"] == "zebra" and record["matchedProbability"] >= 0.5
        assert any(p["tagName"] == "zebra" for p in record["predictions"])
        assert (record["width"], record["height"]) == (640, 480)  # the original frame, not the resized one
        jpeg = every_run.captures / record["capturedAt"][:10] / record["file"]
        image = Image.open(io.BytesIO(jpeg.read_bytes()))
        image.load()
        assert image.size == (640, 480)
        assert f"_{frame:06d}_zebra" in record["file"]
    assert every_run.module.keeper.counters.captures == len(stored)


def test_every_frame_is_scored_and_sent_with_the_contract(every_run: Run, slideshow: Slideshow, model_id: str) -> None:
    results = every_run.hub.bodies("output1")
    assert [body["frame"] for body in results] == list(range(slideshow.frame_count))
    for body in results:
        assert set(body) >= CONTRACT_KEYS
        assert len(body["predictions"]) == 5  # MESSAGE_TOP_N of the model's 1000
        assert body["predictions"][0]["tagName"] == body["topTag"]
        assert body["topProbability"] == body["predictions"][0]["probability"]
        assert body["modelId"] == model_id
        assert body["source"] == str(slideshow)
        assert datetime.fromisoformat(body["capturedAt"].replace("Z", "+00:00")).tzinfo is not None
    properties = [props for name, _, props in every_run.hub.messages if name == "output1"]
    assert all(set(p) == {"topTag", "topProbability"} for p in properties)
    assert all(
        float(p["topProbability"]) == pytest.approx(b["topProbability"])
        for p, b in zip(properties, results, strict=True)
    )
    top = {body["frame"]: body["topTag"] for body in results}
    assert {top[f] for f in slideshow.frames_of(DOG)} == {"malamute"}
    assert {top[f] for f in slideshow.frames_of(ELEPHANTS)} == {"African elephant"}


def test_each_stored_frame_is_announced_on_captures(every_run: Run) -> None:
    events = every_run.hub.bodies("captures")
    stored = every_run.stored()
    assert sorted(e["frame"] for e in events) == sorted(stored)
    for event in events:
        assert event["event"] == "capture" and event["matchedTag"] == "zebra"
        assert (every_run.captures / event["file"]).is_file() and (every_run.captures / event["sidecar"]).is_file()
        assert event["modelId"] == stored[event["frame"]]["modelId"]


def test_on_change_sends_only_when_the_top_tag_changes(
    every_run: Run, scoring_service: ScoringService, slideshow: Slideshow, tmp_path: Path
) -> None:
    tags = [body["topTag"] for body in every_run.hub.bodies("output1")]
    changes = [tag for i, tag in enumerate(tags) if i == 0 or tag != tags[i - 1]]
    run = run_module(
        settings_for(scoring_service.url, slideshow, send_mode="on-change", min_send_interval=0, resize_width=320)
    )
    assert [body["topTag"] for body in run.hub.bodies("output1")] == changes
    assert len(changes) < len(tags)
    assert not run.hub.bodies("captures") and run.module.counters.scored == slideshow.frame_count


def test_cooldown_keeps_a_standing_deer_from_filling_the_disk(
    scoring_service: ScoringService, slideshow: Slideshow, tmp_path: Path
) -> None:
    cooldown = 0.5  # seconds of video; frames are 0.2 s apart
    run = run_module(
        settings_for(
            scoring_service.url,
            slideshow,
            capture_tags="ZEBRA",
            capture_cooldown=cooldown,
            capture_dir=tmp_path,
        )
    )
    expected, last = [], None
    for frame in [*slideshow.frames_of(ZEBRAS_1), *slideshow.frames_of(ZEBRAS_2)]:
        if last is None or frame / slideshow.fps - last >= cooldown:
            expected.append(frame)
            last = frame / slideshow.fps
    assert sorted(run.stored()) == expected
    assert run.module.keeper.counters.cooldown_skips == 2 * slideshow.frames_each - len(expected)


def test_retention_keeps_the_newest_captures_within_the_limits(
    scoring_service: ScoringService, slideshow: Slideshow, tmp_path: Path
) -> None:
    old = datetime.now(timezone.utc) - timedelta(days=45)
    store = CaptureStore(tmp_path)
    expired = store.save(DOG.read_bytes(), sample_sidecar("malamute"), captured_at=old, frame=0, tag="malamute")
    limit_mb = 0.25
    run = run_module(
        settings_for(
            scoring_service.url,
            slideshow,
            capture_tags="*",
            capture_threshold=0,
            capture_cooldown=0,
            capture_dir=tmp_path,
            capture_max_mb=limit_mb,
            capture_max_age_days=30,
        )
    )
    assert not expired.jpeg.exists()
    kept = sorted(run.stored())
    assert 1 < len(kept) < slideshow.frame_count
    assert kept == list(range(slideshow.frame_count - len(kept), slideshow.frame_count))  # the newest survive
    size = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert size <= limit_mb * 1024 * 1024
    assert run.module.keeper.counters.captures == slideshow.frame_count
    assert run.module.keeper.counters.pruned == slideshow.frame_count - len(kept) + 1


def test_twin_settings_apply_at_start_and_live(
    scoring_service: ScoringService, slideshow: Slideshow, tmp_path: Path
) -> None:
    hub = RecordingHub(desired={"CAPTURE_TAGS": "malamute", "capture_cooldown": 0, "$version": 2})

    def patch_after_first_message(hub: RecordingHub) -> None:
        if len(hub.messages) == 1:
            assert hub.desired_handler is not None
            hub.desired_handler({"capture_threshold": 7})  # invalid: rejected, reported, nothing changes
            hub.desired_handler({"CAPTURE_TAGS": "African elephant", "SEND_MODE": "every", "min_send_interval": 0})

    hub.on_send = patch_after_first_message
    run = run_module(settings_for(scoring_service.url, slideshow, capture_dir=tmp_path), hub)
    stored = run.stored()
    assert stored[0]["matchedTag"] == "malamute"  # the twin at start asked for malamutes...
    assert sorted(stored) == [0, *slideshow.frames_of(ELEPHANTS)]  # ...then for elephants only
    first = hub.reports[0]
    assert first["CAPTURE_TAGS"] == "malamute" and "stats" in first
    errors = [r["settingsError"] for r in hub.reports if r.get("settingsError")]
    assert len(errors) == 1 and "CAPTURE_THRESHOLD" in errors[0]
    final = hub.reported
    assert final["CAPTURE_TAGS"] == "African elephant" and final["SEND_MODE"] == "every"
    assert final["CAPTURE_THRESHOLD"] == 0.5 and final["settingsError"] is None
    assert final["stats"]["frames"] == slideshow.frame_count
    assert final["stats"]["captures"] == len(stored)
    assert len(hub.bodies("output1")) == slideshow.frame_count  # every frame once SEND_MODE=every applied


def test_a_scorer_answering_errors_is_counted_and_the_file_is_still_finished(
    scoring_service: ScoringService, slideshow: Slideshow
) -> None:
    settings = settings_for(scoring_service.url, slideshow, max_backoff=0.05)
    settings = settings.updated({"IMAGE_PROCESSING_ENDPOINT": f"{scoring_service.url}/no-such-route"})
    run = run_module(settings)
    counters = run.module.counters
    assert counters.frames == slideshow.frame_count  # a 4xx is not retried: each frame gives up once
    assert counters.errors == slideshow.frame_count and counters.scored == 0
    assert "HTTP 404" in run.module.last_error
    assert not run.hub.bodies("output1")


def test_answers_not_matching_the_contract_are_counted_rejects_and_damaged_sidecars_too(
    bad_scorer: str, slideshow: Slideshow, tmp_path: Path
) -> None:
    store = CaptureStore(tmp_path / "captures")
    when = datetime.now(timezone.utc)
    kept = store.save(DOG.read_bytes(), sample_sidecar("zebra"), captured_at=when, frame=1, tag="zebra")
    kept.sidecar.write_text('{"matchedTag": "zebra", "matchedProbability": "high"}')  # damaged by hand
    settings = settings_for(bad_scorer, slideshow, max_backoff=0.05, capture_tags="zebra", capture_dir=store.root)
    run = run_module(settings.updated({"IMAGE_PROCESSING_ENDPOINT": f"{bad_scorer}/over-one"}))
    counters = run.module.counters
    assert counters.frames == slideshow.frame_count  # every frame tried once, none crashed the loop
    assert counters.scored == 0 and counters.errors == slideshow.frame_count
    assert counters.rejected == slideshow.frame_count + 1  # the answers, and the damaged sidecar at start
    assert "predictions.0.probability" in run.module.last_error
    assert not run.hub.bodies("output1") and not run.hub.bodies("captures")
    assert run.module.status()["stats"]["rejected"] == counters.rejected


def test_every_message_round_trips_through_its_contract(every_run: Run) -> None:
    """What the camera sends and stores is exactly what the contract models write (nothing extra, nothing lost)."""
    for output, model in CAMERA_OUTPUTS.items():
        bodies = every_run.hub.bodies(output)
        assert bodies, output
        for body in bodies:
            assert encode(parse(model, body)) == body
    for record in every_run.stored().values():
        assert encode(parse(CaptureSidecar, record)) == record


def test_a_twin_naming_a_missing_video_keeps_the_manifest_source(
    scoring_service: ScoringService, slideshow: Slideshow
) -> None:
    hub = RecordingHub(desired={"VIDEO_PATH": "/nonexistent/park.avi"})
    run = run_module(settings_for(scoring_service.url, slideshow, message_top_n=1), hub)
    assert run.module.counters.scored == slideshow.frame_count
    assert "VIDEO_PATH" in hub.reports[0]["settingsError"]
    assert hub.reported["VIDEO_PATH"] == str(slideshow)
    assert all(len(body["predictions"]) == 1 for body in hub.bodies("output1"))


@pytest.mark.slow
def test_frame_rate_caps_a_live_source_and_skips_rather_than_lags(
    scoring_service: ScoringService, dog_clip: Slideshow
) -> None:
    # The 2 s clip played like a live camera at 10 frames/s, scored at most 2 frames/s.
    run = run_module(
        settings_for(
            scoring_service.url, dog_clip, play_at_file_rate="yes", frame_rate=2, send_mode="every", min_send_interval=0
        )
    )
    frames = [body["frame"] for body in run.hub.bodies("output1")]
    assert len(frames) == run.module.counters.scored
    assert 0 < len(frames) <= dog_clip.frame_count // 2
    assert frames == sorted(set(frames)) and max(b - a for a, b in itertools.pairwise(frames)) > 1


def test_a_full_disk_skips_captures_counted_and_recovers_when_space_returns(
    scoring_service: ScoringService, slideshow: Slideshow, tiny_disk: Path
) -> None:
    filler = fill_disk(tiny_disk, leave=4096)  # room for a sidecar, not for a JPEG
    hub = RecordingHub()
    module = CaptureModule(
        settings_for(
            scoring_service.url,
            slideshow,
            send_mode="every",
            min_send_interval=0,
            capture_tags="*",
            capture_threshold=0,
            capture_cooldown=0,
            capture_dir=tiny_disk / "captures",
            capture_max_mb=0.5,
        ),
        hub,
    )
    reported_while_full: list[str] = []

    def free_space_once_a_capture_was_skipped(hub: RecordingHub) -> None:
        if filler.exists() and module.keeper.counters.storage_skips:
            reported_while_full.append(module.status()["lastError"])
            filler.unlink()

    hub.on_send = free_space_once_a_capture_was_skipped
    assert module.run() == 0
    kept = module.keeper.counters
    assert not filler.exists(), "no capture was ever skipped"
    assert kept.storage_skips >= 1 and kept.captures >= 1
    assert kept.captures + kept.storage_skips == slideshow.frame_count  # every frame stored or counted
    assert "No space left on device" in reported_while_full[0]
    jpegs = sorted((tiny_disk / "captures").rglob("*.jpg"))
    sidecars = sorted((tiny_disk / "captures").rglob("*.json"))
    assert [p.with_suffix(".json") for p in jpegs] == sidecars  # no sidecar without its JPEG, no half capture
    for jpeg in jpegs:
        Image.open(jpeg).load()
    assert hub.reported["stats"]["storageSkips"] == kept.storage_skips
    assert hub.reported["lastError"] == ""  # recovered
    assert len(hub.bodies(CAPTURES_OUTPUT)) == kept.captures

"""The ranger's loop with real processes: the camera keeps frames -> the portal lists them as predictions ->
they are tagged into training -> a new iteration is published under the name the scorer serves -> the
scorer swaps models with no failed request -> the camera's next frames carry the new model id."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from edgevision.demo.slideshow import make_slideshow
from tests.capture.conftest import ModuleProcess
from tests.conftest import ScoringService, wait_until
from tests.portal.conftest import Portal, aerial_images, training
from tests.portal.test_sdk_project import trained, upload


def run_camera(tmp_path: Path, clip: Path, endpoint: str, captures: Path, run: int) -> list[dict]:
    camera = ModuleProcess(
        {
            "VIDEO_PATH": str(clip),
            "IMAGE_PROCESSING_ENDPOINT": endpoint,
            "CAPTURE_TAGS": "Developed",
            "CAPTURE_DIR": str(captures),
            "CAPTURE_COOLDOWN": "0",
            "LOOP_VIDEO": "false",
        },
        tmp_path / f"camera-{run}.log",
    )
    try:
        assert camera.wait(120) == 0, camera.log
    finally:
        camera.stop()
    return [json.loads(p.read_text()) for p in sorted(captures.rglob("*.json"))]


@dataclass
class CameraLoop:
    """A portal reading the camera's captures, a scorer serving its published folder, a project whose first
    iteration is published as "camera", and the frames one camera run over a clip of held-out tiles kept."""

    portal: Portal
    scorer: ScoringService
    trainer: object
    project: object
    tags: dict[str, str]
    first: object
    tiles: dict[str, list[Path]]
    clip: Path
    endpoint: str
    published: Path
    kept: list[dict]


@contextmanager
def camera_loop(tmp_path: Path) -> Iterator[CameraLoop]:
    captures, published = tmp_path / "captures", tmp_path / "published"
    env = {"CAPTURE_DIR": str(captures), "PORTAL_CAPTURE_SCAN_SECONDS": "0.3"}
    portal = Portal(tmp_path / "data", published=published, env=env)
    scorer = ScoringService(env={"PUBLISHED_DIR": str(published)})
    try:
        trainer = portal.trainer()
        project = trainer.create_project("deer camera")
        tiles = aerial_images(10)
        tags = {name: trainer.create_tag(project.id, name).id for name in ("Barren", "Developed")}
        upload(trainer, project.id, tags, {name: tiles[name][:6] for name in tags})
        first = trained(trainer, project.id, trainer.train_project(project.id))
        trainer.publish_iteration(project.id, first.id, "camera", "resource")
        clip = make_slideshow(
            [*tiles["Developed"][6:], *tiles["Barren"][6:]], tmp_path / "clip.avi", fps=2, size=(320, 320)
        )
        endpoint = f"{scorer.url}/{project.id}/classify/iterations/camera/image"
        kept = run_camera(tmp_path, clip, endpoint, captures / "run1", 1)
        yield CameraLoop(portal, scorer, trainer, project, tags, first, tiles, clip, endpoint, published, kept)
    finally:
        scorer.close()
        portal.close()


@pytest.mark.slow
def test_kept_frames_to_a_better_model_on_the_camera(tmp_path: Path) -> None:
    with camera_loop(tmp_path) as loop:
        trainer, project, tags, first, tiles = loop.trainer, loop.project, loop.tags, loop.first, loop.tiles
        clip, endpoint, published, kept = loop.clip, loop.endpoint, loop.published, loop.kept
        assert kept and {k["matchedTag"] for k in kept} == {"Developed"}

        def stored():
            found = trainer.query_predictions(
                project.id, training.models.PredictionQueryToken(application="camera-capture")
            )
            return found.results if len(found.results) == len(kept) else None

        frames = wait_until(stored, timeout=60, what="the kept frames to reach the portal")
        assert {f.iteration for f in frames} == {first.id}

        # the ranger confirms them: into training with their tag, in one call
        entries = [training.models.ImageIdCreateEntry(id=f.id, tag_ids=[tags["Developed"]]) for f in frames]
        summary = trainer.create_images_from_predictions(project.id, training.models.ImageIdCreateBatch(images=entries))
        assert summary.is_batch_successful, [i.status for i in summary.images]
        new = sum(i.status == "OK" for i in summary.images)  # a photo held for two frames gives one picture
        assert new >= 4 and trainer.get_tagged_image_count(project.id) == 12 + new
        second = trained(trainer, project.id, trainer.train_project(project.id))
        assert second.status == "Completed"
        assert trainer.get_image_performance_count(project.id, second.id) > trainer.get_image_performance_count(
            project.id, first.id
        )

        # publish under the camera's name while a client keeps asking: no failed request, then the new model
        failures, answers, stop = [], [], threading.Event()
        photo = tiles["Developed"][9].read_bytes()

        def client() -> None:
            while not stop.is_set():
                answer = requests.post(endpoint, data=photo, timeout=30)
                (answers if answer.status_code == 200 else failures).append(answer.headers.get("X-Model-Id"))

        thread = threading.Thread(target=client)
        thread.start()
        trainer.publish_iteration(project.id, second.id, "camera", "resource", overwrite=True)
        new_sha = json.loads((published / "camera" / "cvexport.manifest").read_text())["ModelFileSHA256"][:12]
        wait_until(lambda: answers and answers[-1].endswith(new_sha), what="the scorer to serve iteration 2")
        stop.set()
        thread.join(30)
        assert not failures
        old_ids = {k["modelId"] for k in kept}
        again = run_camera(tmp_path, clip, endpoint, tmp_path / "captures" / "run2", 2)
        assert {k["modelId"] for k in again} == {answers[-1]} and not old_ids & {answers[-1]}

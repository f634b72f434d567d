"""The optional custom-vision-portal image, built from its Dockerfile by scripts/images.sh, on a real engine: as
its non-root user on a loopback port (--network host), its data in a Docker volume, the keys from its env, the
official Custom Vision SDK drives a project from creation to a prediction (training with the linear head: the
image has no torch), the project survives a new container on the same volume, and the health check passes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.conftest import free_port, wait_for_http, wait_until
from tests.images.engine import built_image
from tests.portal.conftest import PREDICTION_KEY, TRAINING_KEY, aerial_images, msrest_auth, prediction, training

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def portal_image() -> str:
    return built_image("CustomVisionPortal")


@dataclass
class PortalContainer:
    image: str
    volume: str
    port: int
    name: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.name = f"edgevision-test-portal-{os.getpid()}-{self.port}"
        env = {"PORTAL_HOST": "127.0.0.1", "PORTAL_PORT": str(self.port)}
        env |= {"TRAINING_KEY": TRAINING_KEY, "PREDICTION_KEY": PREDICTION_KEY}
        subprocess.run(
            # --network host: no bridge on this engine; the health check as in the Dockerfile, only more often
            [
                *("docker", "run", "-d", "--name", self.name, "--network", "host", "--health-interval", "2s"),
                *("--init", "-v", f"{self.volume}:/data/portal"),
                *(arg for key, value in env.items() for arg in ("-e", f"{key}={value}")),
                self.image,
            ],
            check=True,
            capture_output=True,
        )
        wait_for_http(f"{self.url}/health", timeout=120)

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, check=False)

    def inspect(self, template: str) -> str:
        command = ["docker", "inspect", "-f", template, self.name]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()

    def trainer(self):
        credentials = msrest_auth.ApiKeyCredentials(in_headers={"Training-key": TRAINING_KEY})
        return training.CustomVisionTrainingClient(self.url, credentials)

    def predictor(self):
        credentials = msrest_auth.ApiKeyCredentials(in_headers={"Prediction-key": PREDICTION_KEY})
        return prediction.CustomVisionPredictionClient(self.url, credentials)


@pytest.fixture
def portal(portal_image: str) -> Iterator[PortalContainer]:
    volume = f"edgevision-test-portal-{os.getpid()}"
    subprocess.run(["docker", "volume", "create", volume], check=True, capture_output=True)
    container = PortalContainer(portal_image, volume, free_port())
    try:
        container.start()
        yield container
    finally:
        container.remove()
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True, check=False)


def test_the_portal_image_trains_and_predicts_with_the_sdk_as_its_user_and_keeps_its_data(portal) -> None:
    assert portal.inspect("{{.Config.User}}") == "10001"
    # The Training API wants its key (the portal listens on loopback here, but keys are what it has beyond it).
    assert requests.get(f"{portal.url}/customvision/v3.3/training/projects", timeout=10).status_code == 401

    trainer = portal.trainer()
    compact = next(d for d in trainer.get_domains() if d.name == "General (compact)")
    project = trainer.create_project("in a container", domain_id=compact.id)
    assert [p.name for p in trainer.get_projects()] == ["in a container"]
    images = aerial_images(per_tag=6)
    tags = {name: trainer.create_tag(project.id, name).id for name in images}
    entries = [
        training.models.ImageFileCreateEntry(name=path.name, contents=path.read_bytes(), tag_ids=[tags[name]])
        for name, paths in images.items()
        for path in paths
    ]
    summary = trainer.create_images_from_files(project.id, training.models.ImageFileCreateBatch(images=entries))
    assert summary.is_batch_successful, [i.status for i in summary.images]

    queued = trainer.train_project(project.id)
    iteration = wait_until(
        lambda: (i := trainer.get_iteration(project.id, queued.id)).status != "Training" and i,
        timeout=300,
        what="training in the container",
    )
    assert iteration.status == "Completed", iteration.training_error_details
    assert trainer.publish_iteration(project.id, iteration.id, "landuse", "resource-id")
    held_out = {name: paths[-1] for name, paths in aerial_images(per_tag=8).items()}
    answers = {
        name: portal.predictor().classify_image(project.id, "landuse", path.read_bytes())
        for name, path in held_out.items()
    }
    assert all(a.iteration == iteration.id for a in answers.values())
    assert sum(a.predictions[0].tag_name == name for name, a in answers.items()) >= len(answers) - 1

    # Its files belong to its user, in the volume (as root inside, so nothing hides behind permissions).
    owners = subprocess.run(
        ["docker", "exec", "--user", "0", portal.name, "find", "/data/portal", "!", "-user", "10001"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert owners.stdout.strip() == ""
    health = wait_until(lambda: portal.inspect("{{.State.Health.Status}}") == "healthy", timeout=60, what="healthy")
    assert health

    # A new container on the same volume (an image update on a device) still has the project and its model.
    portal.remove()
    portal.start()
    trainer = portal.trainer()
    assert [p.name for p in trainer.get_projects()] == ["in a container"]
    assert [i.id for i in trainer.get_iterations(project.id)] == [iteration.id]
    again = portal.predictor().classify_image(project.id, "landuse", held_out[next(iter(held_out))].read_bytes())
    assert again.iteration == iteration.id


def test_the_portal_image_refuses_to_listen_beyond_loopback_without_keys(portal_image: str) -> None:
    # The image's defaults (PORTAL_HOST=0.0.0.0) and no keys: a one-line refusal and an exit, never an open port.
    run = ["docker", "run", "--rm", "--network", "none", portal_image]
    result = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "refusing to listen on 0.0.0.0 without TRAINING_KEY and PREDICTION_KEY" in lines[0], lines[0]

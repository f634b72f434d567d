"""Against real services: the images' HEALTHCHECK probes as Docker runs them, and the scorer endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import urlsplit

import requests

from tests.conftest import ROOT, free_port, shared_path, wait_for_http


def probe(folder: str) -> list[str]:
    """The HEALTHCHECK command of the module's amd64 image (exec form), with this interpreter as `python`."""
    for line in (ROOT / "modules" / folder / "Dockerfile.amd64").read_text().splitlines():
        if line.startswith("HEALTHCHECK "):
            command = json.loads(line.split(" CMD ", 1)[1])
            assert command[0] == "python"
            return [sys.executable, *command[1:]]
    raise AssertionError(f"{folder}: no HEALTHCHECK")


def run(command: list[str], **env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k not in {"PORT", "SHOW_VIDEO", "VIEWER_PORT"}}
    return subprocess.run(command, env={**clean, **env}, capture_output=True, timeout=30, check=False).returncode


def test_scorer_probe_is_healthy_while_the_service_answers(scoring_service):
    assert run(probe("ImageClassifierService"), PORT=str(scoring_service.port)) == 0


def test_scorer_probe_is_unhealthy_when_nothing_listens():
    assert run(probe("ImageClassifierService"), PORT=str(free_port())) != 0


def test_camera_probe_checks_the_viewer_only_when_it_is_on():
    command = probe("CameraCapture")
    assert run(command) == 0  # SHOW_VIDEO off: no viewer to check
    assert run(command, SHOW_VIDEO="true", VIEWER_PORT=str(free_port())) != 0


def test_camera_probe_is_healthy_while_the_viewer_serves(tmp_path):
    video = shared_path("media/video/vtest.avi")
    port = free_port()
    env = {
        **os.environ,
        "VIDEO_PATH": str(video),
        "SHOW_VIDEO": "true",
        "VIEWER_HOST": "127.0.0.1",
        "VIEWER_PORT": str(port),
        "IMAGE_PROCESSING_ENDPOINT": "",
        "FRAME_RATE": "5",
        "CAPTURE_DIR": str(tmp_path / "captures"),
    }
    camera = subprocess.Popen(
        [sys.executable, str(ROOT / "modules" / "CameraCapture" / "main.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/status", timeout=60, process=camera)
        assert run(probe("CameraCapture"), SHOW_VIDEO="true", VIEWER_PORT=str(port)) == 0
    finally:
        camera.terminate()
        try:
            camera.wait(10)
        except subprocess.TimeoutExpired:
            camera.kill()
            camera.wait()


def test_the_camera_endpoint_in_the_manifest_is_a_scorer_route(scoring_service):
    """The path of the manifest's IMAGE_PROCESSING_ENDPOINT, posted a real photo as the camera does, scores it."""
    manifest = json.loads((ROOT / "deployment.template.json").read_text())
    modules = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]
    endpoint = urlsplit(modules["camera-capture"]["env"]["IMAGE_PROCESSING_ENDPOINT"]["value"])
    photo = (ROOT / "edgevision" / "demo" / "media" / "photos" / "darknet" / "dog.jpg").read_bytes()
    response = requests.post(
        f"{scoring_service.url}{endpoint.path}",
        data=photo,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert predictions and predictions[0]["probability"] >= predictions[-1]["probability"]

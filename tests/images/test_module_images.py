"""The module images, built from their Dockerfiles by scripts/images.sh, on a real Docker engine: the scorer
answers /image for a real photo like `edgevision serve`, as its non-root user, healthy; the camera plays a
mounted video and posts to the scorer container; the display renders PNG frames into a mounted folder."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT
from tests.images.engine import built_image, image_tag
from tests.models import imagegen

pytestmark = pytest.mark.slow

DOG = ROOT / "edgevision" / "demo" / "media" / "photos" / "darknet" / "dog.jpg"


@pytest.fixture(scope="module")
def scorer_image() -> str:
    return built_image("ImageClassifierService")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _predictions(url: str) -> list[tuple[str, float]]:
    request = urllib.request.Request(
        f"{url}/image", data=imagegen.ZEBRAS[0].read_bytes(), headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    return [(p["tagName"], p["probability"]) for p in body["predictions"]]


@pytest.fixture
def container(scorer_image: str) -> Iterator[tuple[str, str]]:
    port = _free_port()
    name = f"edgevision-test-scorer-{os.getpid()}"
    subprocess.run(
        # --network host: no bridge on this engine; the health check as in the Dockerfile, only more often
        [
            *("docker", "run", "-d", "--rm", "--name", name, "--network", "host", "--health-interval", "2s"),
            *("-e", "HOST=127.0.0.1", "-e", f"PORT={port}", scorer_image),
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield name, f"http://127.0.0.1:{port}"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@pytest.fixture
def local_scorer() -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "edgevision", "serve"], env=env, stdout=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def test_the_scorer_image_answers_like_edgevision_serve_as_its_user_and_healthy(container, local_scorer):
    name, url = container
    _wait_http(f"{url}/health")
    _wait_http(f"{local_scorer}/health")
    in_image, local = _predictions(url), _predictions(local_scorer)
    assert in_image[0][0] == local[0][0] == "zebra"
    assert [tag for tag, _ in in_image] == [tag for tag, _ in local]
    assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(in_image, local, strict=True))
    user = subprocess.run(["docker", "exec", name, "id", "-u"], capture_output=True, text=True, check=True)
    assert user.stdout.strip() == "10001"
    deadline = time.monotonic() + 60
    health = ""
    while time.monotonic() < deadline and health != "healthy":
        inspect = ["docker", "inspect", "-f", "{{.State.Health.Status}}", name]
        health = subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.strip()
        time.sleep(1)
    assert health == "healthy"


def test_the_display_image_renders_png_frames_into_a_mounted_folder_as_its_user(scorer_image, tmp_path):
    display = scorer_image.replace("image-classifier-service", "sensehat-display")
    out = tmp_path / "display"
    out.mkdir()
    out.chmod(0o777)  # the container's uid 10001 writes here
    name = f"edgevision-test-display-{os.getpid()}"
    run = ["docker", "run", "-d", "--rm", "--name", name, "--network", "none", "-v", f"{out}:/data/display"]
    subprocess.run(
        [*run, "-e", "DISPLAY_BACKEND=render", "-e", "RENDER_DIR=/data/display", display],
        check=True,
        capture_output=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out / "current.png").exists():
            time.sleep(0.5)
        frame = out / "current.png"
        assert frame.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert frame.stat().st_uid == 10001
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_the_camera_image_reads_a_mounted_video_and_posts_to_the_scorer_container(container, tmp_path):
    from edgevision.demo.slideshow import make_slideshow

    _, scorer_url = container
    camera = image_tag("CameraCapture")
    media = tmp_path / "media"
    clip = make_slideshow([DOG, imagegen.ZEBRAS[0]], media / "clip.avi", fps=2.0, seconds_each=1.0)
    captures = tmp_path / "captures"
    captures.mkdir()
    captures.chmod(0o777)  # the container's uid 10001 writes here
    _wait_http(f"{scorer_url}/health")
    name = f"edgevision-test-camera-{os.getpid()}"
    env = {
        "VIDEO_PATH": "/media/clip.avi",
        "LOOP_VIDEO": "false",
        "IMAGE_PROCESSING_ENDPOINT": f"{scorer_url}/image",
        "SEND_MODE": "every",
        "MIN_SEND_INTERVAL": "0",
        "CAPTURE_TAGS": "zebra",
        "CAPTURE_COOLDOWN": "0",
    }
    subprocess.run(
        # --network host: the scorer container listens on this machine's loopback
        [
            *("docker", "run", "-d", "--name", name, "--network", "host"),
            *("-v", f"{media}:/media:ro", "-v", f"{captures}:/data/captures"),
            *(arg for key, value in env.items() for arg in ("-e", f"{key}={value}")),
            camera,
        ],
        check=True,
        capture_output=True,
    )
    try:
        # The clip ends and the module exits by itself (LOOP_VIDEO=false).
        code = subprocess.run(["docker", "wait", name], capture_output=True, text=True, timeout=120, check=True)
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=True)
        assert code.stdout.strip() == "0", logs.stdout[-2000:] + logs.stderr[-2000:]
        user = ["docker", "inspect", "-f", "{{.Config.User}}", name]
        assert subprocess.run(user, capture_output=True, text=True, check=True).stdout.strip() == "10001"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    # Every frame was scored by the scorer container: one output1 message per frame, with the scorer's top tag
    # as a property (no IoT Edge around: the module logs what it would send).
    output = logs.stdout + logs.stderr
    tags = [re.search(r"'topTag': '([^']*)'", line) for line in output.splitlines() if "-> output1" in line]
    assert len(tags) == clip.frame_count and all(tags), output[-3000:]
    assert [t[1] for t in tags if t][-2:] == ["zebra", "zebra"]
    assert tags[0] and tags[0][1] != "zebra"
    # Only the zebra frames were kept, as the container's user, in the mounted folder.
    sidecars = [json.loads(p.read_text()) for p in captures.rglob("*.json")]
    assert sidecars and {s["matchedTag"] for s in sidecars} == {"zebra"}
    assert all(p.stat().st_uid == 10001 for p in captures.rglob("*.jpg"))


def test_the_images_carry_no_compiler_cache_torch_or_build_material(scorer_image):
    # As root inside each image, so nothing is hidden by permissions; any output names what should not be there.
    look = (
        "command -v gcc cc c++ make; ls -d /opt/venv/lib/python3*/site-packages/torch /root/.cache/pip"
        " /home/edgevision/.cache/pip /tmp/src /tmp/cert 2>/dev/null; find / -xdev -name pip-cert.pem"
    )
    for folder in ("ImageClassifierService", "CameraCapture", "SenseHatDisplay", "CustomVisionPortal"):
        image = image_tag(folder)
        # the trainer's feature extractor only where something trains (the portal: tests/images/test_portal_image)
        extra = "" if folder == "CustomVisionPortal" else "; find /opt/venv -name backbone.onnx"
        run = ["docker", "run", "--rm", "--network", "none", "--user", "0", "--entrypoint", "sh", image, "-c"]
        run.append(look + extra)
        found = subprocess.run(run, capture_output=True, text=True, timeout=60)
        assert found.stdout.strip() == "", f"{image}: {found.stdout}"
        assert found.returncode in (0, 1), found.stderr  # the shell ran (docker's own failures are 125-127)

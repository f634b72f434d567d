"""The live viewer (SHOW_VIDEO) of a running module: MJPEG frames with the tag drawn on them, the latest
captures, and the page as headless Chromium renders it."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from edgevision.demo.slideshow import Slideshow
from tests.capture.conftest import ModuleProcess, status
from tests.conftest import ScoringService, free_port, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Viewer:
    def __init__(self, module: ModuleProcess, port: int, captures: Path) -> None:
        self.module = module
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.captures = captures


@pytest.fixture(scope="module")
def viewer(
    scoring_service: ScoringService, dog_clip: Slideshow, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Viewer]:
    """A module playing a clip of the dog photo like a live camera, capturing malamutes, viewer on."""
    folder = tmp_path_factory.mktemp("viewer")
    port = free_port()
    env = {
        "VIDEO_PATH": str(dog_clip),
        "PLAY_AT_FILE_RATE": "true",
        "IMAGE_PROCESSING_ENDPOINT": f"{scoring_service.url}/image",
        "CAPTURE_TAGS": "malamute",
        "CAPTURE_COOLDOWN": "1",
        "CAPTURE_DIR": str(folder / "captures"),
        "SHOW_VIDEO": "yes",
        "VIEWER_PORT": str(port),
    }
    module = ModuleProcess(env, folder / "module.log")
    try:
        wait_until(lambda: (s := status(port)) and s["captures"], 60, "a scored and captured frame")
        yield Viewer(module, port, folder / "captures")
    finally:
        module.stop()


def _label_mask(image: Image.Image) -> np.ndarray:
    """Where `image` has the label's colour (80, 255, 80) as the module draws it on frames."""
    rgb = np.asarray(image.convert("RGB")).astype(int)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (green > 220) & (red > 30) & (red < 130) & (blue > 30) & (blue < 130)


def green_pixels(image: Image.Image) -> int:
    return int(_label_mask(image).sum())


def mjpeg_frames(url: str, count: int) -> list[bytes]:
    frames = []
    with requests.get(url, stream=True, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        buffer = b""
        for chunk in response.iter_content(8192):
            buffer += chunk
            while (start := buffer.find(b"\xff\xd8")) >= 0 and (end := buffer.find(b"\xff\xd9", start)) >= 0:
                frames.append(buffer[start : end + 2])
                buffer = buffer[end + 2 :]
                if len(frames) == count:
                    return frames
    return frames


def test_the_stream_shows_live_frames_with_the_tag_drawn(viewer: Viewer, dog_clip: Slideshow) -> None:
    frames = [Image.open(io.BytesIO(data)) for data in mjpeg_frames(f"{viewer.url}/video.mjpg", 2)]
    assert len(frames) == 2
    plain = Image.open(io.BytesIO(requests.get(f"{viewer.url}/frame.jpg", timeout=10).content))
    for frame in frames:
        assert frame.size == (640, 480)
        assert green_pixels(frame.crop((0, 0, 320, 60))) > 300  # the label band, drawn by the module
    assert status(viewer.port)["tag"] == "malamute"
    assert plain.size == (640, 480)


def test_status_and_captures_are_served(viewer: Viewer) -> None:
    state = status(viewer.port)
    assert state["stats"]["scored"] > 0 and state["modelId"]
    assert re.fullmatch(r"malamute \d+\.\d%", state["label"])
    first = state["captures"][0]
    served = requests.get(f"{viewer.url}{first['url']}", timeout=10)
    assert served.status_code == 200
    assert served.content == (viewer.captures / first["url"].removeprefix("/captures/")).read_bytes()
    missing = requests.get(f"{viewer.url}/captures/../module.log", timeout=10)
    assert missing.status_code == 404
    assert requests.get(f"{viewer.url}/nope", timeout=10).json()["code"] == "NotFound"


def test_metrics_carry_the_counters_and_the_upload_state(viewer: Viewer) -> None:
    text = requests.get(f"{viewer.url}/metrics", timeout=10).text
    scored = re.search(r"^edgevision_camera_scored (\d+)$", text, re.MULTILINE)
    assert scored and int(scored.group(1)) > 0
    assert re.search(r"^edgevision_camera_upload_queued 0$", text, re.MULTILINE)
    assert 'edgevision_camera_upload_state{state="off"} 1' in text  # no BLOB_CONNECTION_STRING here
    journal = requests.get(f"{viewer.url}/captures/.uploads.sqlite", timeout=10)
    assert journal.status_code == 404


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/setup.sh test installs it)")
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_headless_chromium_shows_the_live_image_the_tag_and_the_captures(viewer: Viewer, tmp_path: Path) -> None:
    dom = chromium(tmp_path, "--dump-dom", f"{viewer.url}/").stdout
    assert re.search(r'<img id="live"[^>]*src="/video\.mjpg"', dom), dom[:2000]  # the page's script ran
    assert re.search(r'<div id="tag">malamute \d+\.\d%</div>', dom), dom[:2000]
    assert re.search(r'<figure><img src="/captures/[^"]+_malamute\.jpg" alt="malamute">', dom)

    shot = tmp_path / "page.png"
    chromium(tmp_path, "--window-size=900,1000", f"--screenshot={shot}", f"{viewer.url}/")
    page = Image.open(shot).convert("RGB")
    # The label colour appears only where the module drew it on a live frame (captures are stored clean,
    # the page's text is grey), so this finds the live picture wherever the layout put it.
    green = np.argwhere(_label_mask(page))
    assert len(green) > 300
    top, left = green.min(axis=0)
    picture = np.asarray(page.crop((int(left), int(top), int(left) + 320, int(top) + 240)))
    assert picture.std() > 20  # a photo under the label, not an empty box


def test_show_video_can_be_switched_on_and_off_from_the_twin(
    scoring_service: ScoringService, dog_clip: Slideshow, tmp_path: Path
) -> None:
    from edgevision.capture.module import CaptureModule
    from tests.capture.conftest import RecordingHub, run_in_thread, settings_for

    port = free_port()
    hub = RecordingHub()
    settings = settings_for(scoring_service.url, dog_clip, play_at_file_rate="yes", loop_video="yes", viewer_port=port)
    module = CaptureModule(settings, hub)
    thread = run_in_thread(module.run)
    try:
        wait_until(lambda: hub.desired_handler is not None and module.counters.scored, 30, "the module running")
        assert status(port) is None
        hub.desired_handler({"SHOW_VIDEO": "true"})
        assert wait_until(lambda: status(port), 30, "the viewer")["tag"] == "malamute"
        hub.desired_handler({"show_video": False})
        wait_until(lambda: status(port) is None, 30, "the viewer closed")
        wait_until(lambda: hub.reported["SHOW_VIDEO"] is False, 30, "the change reported")
        assert thread.is_alive()
    finally:
        module.stop()
        thread.join(30)
    assert not thread.is_alive()

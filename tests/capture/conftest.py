"""Fixtures for the camera module's tests: slideshow clips of real photos, the module as a real process,
a scoring service that can be stopped and restarted on its port, and a hub that records what is sent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from edgevision.capture.settings import CaptureSettings
from edgevision.contracts import CaptureSidecar, Prediction
from edgevision.demo import DEMO_PHOTOS
from edgevision.demo.slideshow import Slideshow, make_slideshow
from edgevision.hub import EDGE_VARIABLES, Hub
from tests.conftest import ScoringService

# What the bundled ImageNet model says about the bundled photos (checked by test_photo_facts).
DOG = DEMO_PHOTOS / "darknet" / "dog.jpg"  # malamute
HORSES = DEMO_PHOTOS / "darknet" / "horses.jpg"
PERSON = DEMO_PHOTOS / "darknet" / "person.jpg"
ELEPHANTS = DEMO_PHOTOS / "wildlife-wildbook" / "2014_000002.jpg"  # African elephant
ZEBRAS_1 = DEMO_PHOTOS / "wildlife-wildbook" / "2014_000006.jpg"  # zebra
ZEBRAS_2 = DEMO_PHOTOS / "wildlife-wildbook" / "2014_000007.jpg"  # zebra
SLIDES = (DOG, ZEBRAS_1, HORSES, ELEPHANTS, ZEBRAS_2, PERSON)
FPS = 5.0
FRAMES_EACH = 3


def sample_sidecar(tag: str = "zebra", frame: int = 0, **fields: Any) -> CaptureSidecar:
    """A valid sidecar for store tests (what the camera writes for a frame it keeps)."""
    from datetime import datetime, timezone

    values: dict[str, Any] = {
        "capturedAt": datetime.now(timezone.utc),
        "source": "test",
        "frame": frame,
        "videoTime": 0.0,
        "width": 640,
        "height": 480,
        "matchedTag": tag,
        "matchedProbability": 0.9,
        "topTag": tag,
        "topProbability": 0.9,
        "modelId": "test@0",
        "predictions": [Prediction(tagName=tag, probability=0.9)],
    }
    return CaptureSidecar(**{**values, **fields})


@pytest.fixture(scope="session")
def slideshow(tmp_path_factory: pytest.TempPathFactory) -> Slideshow:
    """Six real photos, three frames each at 5 fps: dog, zebras, horses, elephants, zebras, person."""
    return make_slideshow(SLIDES, tmp_path_factory.mktemp("clips") / "slides.avi", FPS, FRAMES_EACH / FPS)


@pytest.fixture(scope="session")
def dog_clip(tmp_path_factory: pytest.TempPathFactory) -> Slideshow:
    """One photo held for 2 s: a scene whose top tag stays put."""
    return make_slideshow([DOG], tmp_path_factory.mktemp("clips") / "dog.avi", 10.0, 2.0)


@pytest.fixture(scope="session")
def model_id(scoring_service: ScoringService) -> str:
    response = requests.post(f"{scoring_service.url}/image", data=DOG.read_bytes(), timeout=30)
    return response.headers["X-Model-Id"]


def settings_for(endpoint: str, video: os.PathLike[str] | str, **values: Any) -> CaptureSettings:
    """Settings as the environment would give them (strings are parsed the same way)."""
    env = {"VIDEO_PATH": os.fspath(video), "IMAGE_PROCESSING_ENDPOINT": f"{endpoint}/image", "LOOP_VIDEO": "false"}
    env.update({k.upper(): str(v) for k, v in values.items()})
    return CaptureSettings.from_env(env)


class RecordingHub(Hub):
    """The hub boundary, recorded: what a module sends and reports, and a twin it can be given."""

    def __init__(self, desired: Mapping[str, Any] | None = None) -> None:
        self._desired = dict(desired or {})
        self.messages: list[tuple[str, Any, dict[str, Any]]] = []
        self.reports: list[dict[str, Any]] = []
        self.desired_handler: Callable[[dict[str, Any]], None] | None = None
        self.on_send: Callable[[RecordingHub], None] | None = None

    def send(self, output: str, body: Any, properties: Mapping[str, Any] | None = None) -> None:
        self.sent += 1
        self.messages.append((output, body, dict(properties or {})))
        if self.on_send is not None:
            self.on_send(self)

    def on_input(self, handler: Any) -> None:
        pass

    def on_desired(self, handler: Callable[[dict[str, Any]], None]) -> None:
        self.desired_handler = handler

    def desired(self) -> dict[str, Any]:
        return dict(self._desired)

    def report(self, properties: Mapping[str, Any]) -> None:
        self.reports.append(dict(properties))

    def bodies(self, output: str) -> list[Any]:
        return [body for name, body, _ in self.messages if name == output]

    @property
    def reported(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for patch in self.reports:
            merged.update(patch)
        return merged


class ModuleProcess:
    """`edgevision capture` as a real process, configured by environment variables, its log in a file."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        clean = {k: v for k, v in os.environ.items() if k not in EDGE_VARIABLES and k != "VERBOSE"}
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgevision", "capture"],
            env={**clean, **{k: str(v) for k, v in env.items()}},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout)

    def signal(self, signum: int) -> None:
        if self.alive():
            self.process.send_signal(signum)

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


@pytest.fixture
def start_module(tmp_path: Path) -> Iterator[Callable[..., ModuleProcess]]:
    started: list[ModuleProcess] = []

    def start(**env: Any) -> ModuleProcess:
        module = ModuleProcess({k.upper(): str(v) for k, v in env.items()}, tmp_path / f"module-{len(started)}.log")
        started.append(module)
        return module

    yield start
    for module in started:
        module.stop()


def status(port: int) -> dict[str, Any] | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/status", timeout=2).json()
    except requests.RequestException:
        return None


def run_in_thread(target: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


ANSWER = (
    b'{"id": "i", "project": "", "iteration": "", "created": "2026-12-02T10:00:00.000000Z",'
    b' "predictions": [{"tagName": "x", "probability": 0.25, "tagId": "", "boundingBox": null}]}'
)


class Misbehaving(BaseHTTPRequestHandler):
    """A scorer gone wrong, chosen by path."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, body, kind = {
            "/html": (200, b"<html>proxy login</html>", "text/html"),
            "/crash": (500, b'{"code": "Internal", "message": "model exploded"}', "application/json"),
            "/reject": (400, b'{"code": "BadRequest", "message": "not an image"}', "application/json"),
            "/shape": (200, b'{"predictions": [{"tag": "x"}]}', "application/json"),
            "/over-one": (200, ANSWER.replace(b"0.25", b"1.25"), "application/json"),
        }.get(self.path, (404, b"", "text/plain"))
        if self.path == "/slow":
            time.sleep(1.5)
            status, body, kind = 200, b'{"predictions": []}', "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # /slow: the client gave up, as it should

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def bad_scorer() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()

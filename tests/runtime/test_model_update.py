"""Model update by twin, in the local runtime: the real scorer process, real twins over MQTT, a manifest edit
pushes the desired properties, a loopback https server with its own CA serves models."""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import ssl
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from edgevision.models import DEFAULT_MODEL_DIR
from edgevision.runtime import certs
from tests.conftest import shared_path, wait_until
from tests.runtime.conftest import LiveRun, manifest

pytestmark = pytest.mark.slow

SCORER = "image-classifier-service"


def scorer_module() -> dict[str, Any]:
    return {
        "type": "docker",
        "status": "running",
        "restartPolicy": "always",
        "settings": {
            "image": "${MODULES.ImageClassifierService}",
            "createOptions": {"HostConfig": {"Binds": ["updates:/updates", "models:/models"]}},
        },
        "env": {
            "MODEL_UPDATE_DIR": {"value": "/updates"},
            "MODELS_ROOT": {"value": "/models"},
            "MODEL_CA_FILE": {"value": "/models/update-ca.pem"},
            "THREADS": {"value": "4"},
        },
    }


def zipped(folder: Path, target: Path) -> str:
    """A Custom Vision-style export zip of `folder`; returns its SHA-256."""
    with zipfile.ZipFile(target, "w") as archive:
        for name in ("model.onnx", "labels.txt"):
            archive.write(folder / name, name)
    return hashlib.sha256(target.read_bytes()).hexdigest()


@dataclass
class Device:
    run: LiveRun
    manifest: Path
    models: Path
    https: str
    served: Path  # the https server's folder

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.run.state()['modules'][SCORER]['ports']['PORT']}"

    def desire(self, **properties: Any) -> None:
        self.manifest.write_text(manifest({SCORER: scorer_module()}, {}, {SCORER: properties}))

    def reported(self) -> dict[str, Any]:
        path = self.run.out / "twins" / f"{SCORER}.json"
        try:
            return json.loads(path.read_text())["reported"]
        except (OSError, ValueError, KeyError):
            return {}

    def serving(self) -> bool:
        try:
            return requests.get(f"{self.url}/health", timeout=2).ok
        except (requests.RequestException, KeyError):
            return False

    def health(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/health", timeout=10).json()


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def device(mosquitto: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Device]:
    root = tmp_path_factory.mktemp("update")
    out = root / "out"
    models = out / "models"  # the runtime maps the named volume `models` to this folder
    models.mkdir(parents=True)
    served = root / "served"
    served.mkdir()
    tls = certs.generate(root / "tls", ["127.0.0.1"])
    shutil.copy(tls.ca, models / "update-ca.pem")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Files(*a, directory=str(served)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert, tls.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = root / "deployment.json"
    path.write_text(manifest({SCORER: scorer_module()}, {}))
    run = LiveRun(path, out).start()
    found = Device(run, path, models, f"https://127.0.0.1:{server.server_address[1]}", served)
    try:
        wait_until(found.serving, 60, "the scorer to serve")
        yield found
    finally:
        run.stop()
        server.shutdown()


@pytest.fixture(scope="module")
def cat_or_dog(device: Device) -> str:
    folder = shared_path("models/customvision-exports/cat-or-dog")
    return zipped(folder, device.models / "cat-or-dog.zip")


@pytest.fixture(scope="module")
def imagenet(device: Device) -> str:
    return zipped(DEFAULT_MODEL_DIR, device.served / "imagenet.zip")


def cat_or_dog_tags() -> set[str]:
    labels = shared_path("models/customvision-exports/cat-or-dog/labels.txt").read_text()
    return {line.strip() for line in labels.splitlines() if line.strip()}


def kitten() -> bytes:
    return shared_path("models/customvision-exports/cat-or-dog/sample_kitten_224.png").read_bytes()


def classify(device: Device) -> requests.Response:
    return requests.post(f"{device.url}/image", data=kitten(), timeout=30)


def test_a_model_in_the_models_volume_replaces_the_serving_one(device: Device, cat_or_dog: str) -> None:
    before = classify(device).json()
    assert len(before["predictions"]) > 2  # the bundled ImageNet model
    device.desire(modelUrl="cat-or-dog.zip", modelSha256=cat_or_dog)
    reported = wait_until(lambda: device.reported().get("modelSha256") == cat_or_dog and device.reported(), 60)
    assert reported["modelUrl"] == "cat-or-dog.zip" and reported.get("modelUpdateError") is None
    answer = classify(device)
    assert {p["tagName"] for p in answer.json()["predictions"]} == cat_or_dog_tags()
    assert answer.headers["X-Model-Id"] == reported["modelId"] == device.health()["modelId"]
    assert max(answer.json()["predictions"], key=lambda p: p["probability"])["tagName"] == "cat"


def test_a_wrong_digest_is_refused_and_reported(device: Device, cat_or_dog: str, imagenet: str) -> None:
    wrong = hashlib.sha256(b"another model").hexdigest()
    device.desire(modelUrl=f"{device.https}/imagenet.zip", modelSha256=wrong)
    error = wait_until(lambda: device.reported().get("modelUpdateError"), 60, "the refusal")
    assert "SHA-256" in error and imagenet in error
    assert device.reported()["modelSha256"] == cat_or_dog  # still the model that served before
    assert {p["tagName"] for p in classify(device).json()["predictions"]} == cat_or_dog_tags()


def test_a_model_that_does_not_load_is_rolled_back(device: Device, cat_or_dog: str) -> None:
    broken = device.models / "broken.onnx"
    broken.write_bytes(b"\x08\x07" + b"not a network" * 100)
    device.desire(modelUrl="broken.onnx", modelSha256=hashlib.sha256(broken.read_bytes()).hexdigest())
    error = wait_until(lambda: "does not load" in (device.reported().get("modelUpdateError") or "") and 1, 60)
    assert error
    assert device.reported()["modelSha256"] == cat_or_dog
    assert {p["tagName"] for p in classify(device).json()["predictions"]} == cat_or_dog_tags()
    assert not (device.run.out / "updates" / hashlib.sha256(broken.read_bytes()).hexdigest()).exists()


def test_a_path_outside_the_models_volume_is_refused(device: Device, cat_or_dog: str) -> None:
    device.desire(modelUrl="../../etc/passwd", modelSha256=hashlib.sha256(b"elsewhere").hexdigest())
    error = wait_until(lambda: "models volume" in (device.reported().get("modelUpdateError") or "") and 1, 60)
    assert error and device.reported()["modelSha256"] == cat_or_dog


def test_an_https_swap_under_load_fails_no_request(device: Device, cat_or_dog: str, imagenet: str) -> None:
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def load() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                response = session.post(f"{device.url}/image", data=kitten(), timeout=30)
                answers.append((response.status_code, response.headers.get("X-Model-Id", "")))

    workers = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for worker in workers:
        worker.start()
    wait_until(lambda: len(answers) >= 5, 60, "load before the swap")
    device.desire(modelUrl=f"{device.https}/imagenet.zip", modelSha256=imagenet)
    wait_until(lambda: device.reported().get("modelSha256") == imagenet, 90, "the swap")
    new_id = device.reported()["modelId"]
    wait_until(lambda: sum(model == new_id for _, model in answers) >= 5, 60, "load after the swap")
    stop.set()
    for worker in workers:
        worker.join(30)
    assert {status for status, _ in answers} == {200}
    assert len({model for _, model in answers}) == 2  # answered by the old model, then by the new one
    assert device.reported().get("modelUpdateError") is None  # null deletes it, as IoT Hub does


def test_a_restarted_scorer_serves_the_model_the_twin_sent(device: Device, imagenet: str) -> None:
    import os
    import signal

    expected = device.reported()["modelId"]
    assert device.reported()["modelSha256"] == imagenet
    pid = device.run.state()["modules"][SCORER]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: device.run.state()["modules"][SCORER]["pid"] not in (pid, None), 60, "the restart")
    wait_until(device.serving, 60, "the scorer back")
    assert device.health()["modelId"] == expected
    kept = sorted(p.name for p in (device.run.out / "updates").iterdir() if p.is_dir())
    assert len(kept) == 2  # the current model and the previous one, nothing older

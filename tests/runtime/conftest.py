"""Runtime fixtures: a real run (mosquitto brokers, workload API, router, module processes) in a thread."""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgevision.runtime.broker import BrokerError, find_mosquitto
from edgevision.runtime.console import Console
from edgevision.runtime.runner import RunOptions, Runtime
from tests.conftest import wait_until

FIXTURE_MODULE = Path(__file__).resolve().parent / "fixtures" / "module.py"
TEST_IMAGE = "test/module:1.0"
IMAGES = {TEST_IMAGE: [sys.executable, str(FIXTURE_MODULE)]}


@pytest.fixture(scope="session")
def mosquitto() -> str:
    try:
        return find_mosquitto()
    except BrokerError as exc:
        pytest.skip(str(exc))


def module(env: dict[str, Any], restart: str = "always", order: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "docker",
        "status": "running",
        "restartPolicy": restart,
        "settings": {"image": TEST_IMAGE, "createOptions": {}},
        "env": {k: {"value": v} for k, v in env.items()},
    }
    if order is not None:
        spec["startupOrder"] = order
    return spec


def manifest(modules: dict[str, Any], routes: dict[str, str], desired: dict[str, dict] | None = None) -> str:
    content: dict[str, Any] = {
        "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1", "modules": modules}},
        "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": routes}},
    }
    for name, properties in (desired or {}).items():
        content[name] = {"properties.desired": properties}
    return json.dumps({"modulesContent": content}, indent=2)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class LiveRun:
    """`Runtime.run()` in a background thread, with its console captured."""

    def __init__(self, path: Path, out: Path, **options: Any) -> None:
        self.path = path
        self.out = out
        self.stream = io.StringIO()
        self.runtime = Runtime(
            RunOptions(manifest=path, out=out, images=IMAGES, restart_delay=0.5, stop_timeout=5, **options),
            Console(self.stream),
        )
        self.code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.code = self.runtime.run()
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def start(self) -> LiveRun:
        self.thread.start()
        wait_until(lambda: self.state() or self.error, 30, "the run to start")
        if self.error:
            raise self.error
        return self

    def state(self) -> dict[str, Any]:
        path = self.out / "runtime.json"
        try:
            return json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            return {}

    @property
    def console(self) -> str:
        return self.stream.getvalue()

    def stop(self, timeout: float = 30.0) -> int | None:
        self.runtime.stop()
        self.thread.join(timeout)
        if self.error:
            raise self.error
        return self.code


@pytest.fixture
def live_run(mosquitto: str, tmp_path: Path) -> Iterator[Callable[..., LiveRun]]:
    runs: list[LiveRun] = []

    def start(text: str, **options: Any) -> LiveRun:
        path = tmp_path / "deployment.json"
        path.write_text(text)
        run = LiveRun(path, tmp_path / "out", **options)
        runs.append(run)
        return run.start()

    yield start
    for run in runs:
        run.stop()

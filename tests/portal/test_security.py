"""Beyond loopback the portal needs both keys (or an explicit --insecure); every surface checks its key."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import requests

from tests.conftest import PYTHON, free_port, wait_for_http
from tests.portal.conftest import PREDICTION_KEY, TRAINING_KEY


def portal_command(data: Path, port: int, *extra: str) -> list[str]:
    return [PYTHON, "-m", "edgevision", "portal", "--data", str(data), "--host", "0.0.0.0", "--port", str(port), *extra]


def without_keys() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.endswith("_KEY") and not k.endswith("_KEY_FILE")}


def test_beyond_loopback_without_keys_it_refuses_to_start(tmp_path: Path) -> None:
    run = subprocess.run(
        portal_command(tmp_path, free_port()), env=without_keys(), capture_output=True, text=True, timeout=60
    )
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1].startswith("edgevision portal: error: refusing to listen on 0.0.0.0")
    assert "Traceback" not in run.stderr


def test_insecure_must_be_said_explicitly(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        portal_command(tmp_path, port, "--insecure"),
        env=without_keys(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", process=process)
        assert requests.get(f"http://127.0.0.1:{port}/customvision/v3.3/training/projects", timeout=10).json() == []
    finally:
        process.terminate()
        process.wait(10)


def test_keys_from_files_guard_training_prediction_and_file_links(tmp_path: Path) -> None:
    (tmp_path / "training.key").write_text(TRAINING_KEY + "\n")
    (tmp_path / "prediction.key").write_text(PREDICTION_KEY + "\n")
    env = {
        **without_keys(),
        "TRAINING_KEY_FILE": str(tmp_path / "training.key"),
        "PREDICTION_KEY_FILE": str(tmp_path / "prediction.key"),
    }
    port = free_port()
    process = subprocess.Popen(
        portal_command(tmp_path / "data", port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", process=process)
        projects = f"{base}/customvision/v3.4-preview/training/projects"
        assert requests.get(projects, timeout=10).status_code == 401
        assert requests.get(projects, headers={"training-key": TRAINING_KEY}, timeout=10).status_code == 200
        predict = f"{base}/customvision/v3.1/prediction/{'0' * 8}-0000-0000-0000-{'0' * 12}/classify/iterations/x/image"
        answer = requests.post(predict, data=b"x", timeout=10)
        assert answer.status_code == 401 and answer.json()["code"] == "Unauthorized"
        wrong = requests.post(predict, data=b"x", headers={"Prediction-Key": TRAINING_KEY}, timeout=10)
        assert wrong.status_code == 401
        unsigned = requests.get(f"{base}/files/images/{'a' * 64}/original", timeout=10)
        assert unsigned.status_code == 401
    finally:
        process.terminate()
        process.wait(10)

"""`edgevision predict` prints JSON; `edgevision serve` reads its settings from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import imagegen
import requests

from tests.conftest import free_port, wait_for_http


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "edgevision", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def test_predict_prints_json() -> None:
    result = run("predict", str(imagegen.ZEBRAS[0]), str(imagegen.ELEPHANTS), "--top", "3")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["modelId"].startswith("imagenet-mobilenetv2@")
    zebra, elephants = output["results"]
    assert zebra["image"] == str(imagegen.ZEBRAS[0]) and zebra["predictions"][0]["tagName"] == "zebra"
    assert len(elephants["predictions"]) == 3
    assert "African elephant" in [p["tagName"] for p in elephants["predictions"]]


def test_predict_reports_bad_files_and_fails(tmp_path) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    result = run("predict", str(bad), str(imagegen.ZEBRAS[1]), str(tmp_path / "absent.jpg"))
    assert result.returncode == 1
    results = json.loads(result.stdout)["results"]
    assert results[0]["error"]["code"] == "BadRequestImageFormat"
    assert results[1]["predictions"][0]["tagName"] == "zebra"
    assert results[2]["error"]["code"] == "FileNotReadable"


def test_serve_takes_its_settings_from_the_environment() -> None:
    port = free_port()
    env = {"HOST": "127.0.0.1", "PORT": str(port), "MAX_PREDICTIONS": "2", "THREADS": "2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "edgevision", "serve"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", process=process)
        response = requests.post(f"http://127.0.0.1:{port}/image", data=imagegen.ZEBRAS[0].read_bytes(), timeout=30)
        assert len(response.json()["predictions"]) == 2
    finally:
        process.terminate()
        assert process.wait(10) == 0  # SIGTERM is a clean stop
    assert f"on http://127.0.0.1:{port} with 2 threads" in process.stderr.read()


def test_serve_reports_a_bad_setting_in_one_line() -> None:
    result = run("serve", "--port", str(free_port()), env={"MAX_IMAGE_BYTES": "lots"})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "MAX_IMAGE_BYTES" in result.stderr


def test_serve_on_a_busy_port_fails_in_one_line() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"edgevision serve: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert "Traceback" not in result.stderr

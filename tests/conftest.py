"""Fixtures shared by every test area: paths to the project and to ../shared, free ports, a real scoring service."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEVISION_SHARED", ROOT.parent / "shared")).resolve()
PYTHON = sys.executable


def shared_path(relative: str) -> Path:
    """A path under ../shared, or skip the test with the reason when the shared material is absent."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"shared material {relative} not found under {SHARED} (set EDGEVISION_SHARED)")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy, and return that; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_for_http(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


class ScoringService:
    """A real `edgevision serve` process on a loopback port; `stop()` and `start()` again keep the port."""

    def __init__(self, model: Path | None = None, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [PYTHON, "-m", "edgevision", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if model is not None:
            self.command += ["--model", str(model)]
        self.env = {**os.environ, **(env or {})}
        # The log goes to a file, not a pipe: an unread pipe fills up and blocks a chatty server.
        self.log = Path(tempfile.mkstemp(prefix="edgevision-serve-", suffix=".log")[1])
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_for_http(f"{self.url}/health", process=self.process)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"{exc}; service log:\n{self.log_text()[-2000:]}") from exc

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def close(self) -> None:
        """Stop for good and remove the log."""
        self.stop()
        self.log.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def scoring_service() -> Iterator[ScoringService]:
    """The real scoring service on the bundled default model, shared by the whole session."""
    service = ScoringService()
    yield service
    service.close()


@pytest.fixture(scope="session")
def demo_photos() -> list[Path]:
    from edgevision.demo import demo_photos

    return demo_photos()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a real disk that fills up (mounting needs root, as the IoT Edge containers run)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_disk(folder: Path, leave: int) -> Path:
    """Fill the file system of `folder` but `leave` bytes; returns the filler (delete it to free the space)."""
    filler = folder / "filler.bin"
    free = shutil.disk_usage(folder).free
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(free - leave, 0))
    return filler


# A fixed test account: the key is random bytes in base64, as a real account key is.
BLOB_ACCOUNT = "edgevisiontest"
BLOB_KEY = "dGVzdC1rZXktZm9yLWVkZ2V2aXNpb24tYmxvYi10ZXN0cy1vbmx5LW5vdC1hLXNlY3JldC0wMTIzNDU2Nzg5YWI="


class Azurite:
    """A real Azurite blob service (npm `azurite`, installed by scripts/setup.sh) on a loopback port, keeping its
    data in `location`: `kill()` (SIGKILL, an outage) and `start()` again keep the port and the blobs."""

    def __init__(self, location: Path, port: int | None = None) -> None:
        from edgevision.runtime.azurite import AzuriteError, azurite_command

        self.port = port or free_port()
        self.location = location
        self.endpoint = f"http://127.0.0.1:{self.port}"
        try:
            self.command = azurite_command(location, "127.0.0.1", self.port)
        except AzuriteError as exc:
            pytest.fail(str(exc))
        self.log = location.parent / f"azurite-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def connection_string(self) -> str:
        from edgevision.runtime.azurite import connection_string

        return connection_string(BLOB_ACCOUNT, BLOB_KEY, self.endpoint)

    def start(self) -> None:
        from edgevision.runtime.azurite import azurite_env

        self.location.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, env=azurite_env(BLOB_ACCOUNT, BLOB_KEY), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"azurite exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("azurite did not listen within 30 s")

    def kill(self) -> None:
        """Stop serving at once. SIGTERM, not SIGKILL: Azurite saves its blob index only every few seconds, so
        after SIGKILL it forgets blobs it had acknowledged, which no uploader can notice (the IoT Edge module
        does not lose acknowledged blobs)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def blobs(self) -> list[dict[str, Any]]:
        from edgevision.runtime.azurite import list_blobs

        return list_blobs(self.connection_string)

    def download(self, name: str) -> bytes:
        from azure.storage.blob import BlobServiceClient

        container, _, blob = name.partition("/")
        service = BlobServiceClient.from_connection_string(self.connection_string, api_version="2019-07-07")
        return service.get_blob_client(container, blob).download_blob().readall()


@pytest.fixture
def azurite(tmp_path: Path) -> Iterator[Azurite]:
    server = Azurite(tmp_path / "blobroot")
    yield server
    server.kill()

"""The Docker engine and the module images for tests that run containers (tests/images, tests/runtime)."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ROOT

SCRIPTS = ROOT / "scripts"


def docker_ready() -> str | None:
    """None when the engine answers (started by scripts/docker.sh if needed), else why not."""
    try:
        result = subprocess.run([str(SCRIPTS / "docker.sh")], capture_output=True, text=True, timeout=180, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scripts/docker.sh did not run: {exc}"
    return None if result.returncode == 0 else f"no Docker engine: {result.stderr.strip()[-300:]}"


def build_images(platform: str = "amd64") -> subprocess.CompletedProcess[str]:
    """scripts/images.sh build: the module images of this checkout (seconds when the engine's cache has them)."""
    return subprocess.run([str(SCRIPTS / "images.sh"), "build", platform], capture_output=True, text=True, timeout=1800)


def image_tag(folder: str, platform: str = "amd64") -> str:
    command = [str(SCRIPTS / "images.sh"), "tag", folder, platform]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def require_engine() -> None:
    reason = docker_ready()
    if reason:
        pytest.skip(reason)


def built_image(folder: str) -> str:
    """The amd64 image of a module folder, built (with the others) if needed; skips where Docker cannot start."""
    require_engine()
    build = build_images("amd64")
    assert build.returncode == 0, build.stderr[-3000:]
    return image_tag(folder)

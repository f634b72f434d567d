"""The console command itself: help, version, one-line errors."""

from __future__ import annotations

import subprocess
import sys

from edgevision import __version__


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgevision", *args], capture_output=True, text=True, timeout=60)


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_help_lists_every_subcommand() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("serve", "predict", "capture", "display", "run", "train", "score"):
        assert command in result.stdout, command


def test_no_command_prints_help_and_fails() -> None:
    result = run()
    assert result.returncode == 2
    assert "usage" in result.stdout.lower()

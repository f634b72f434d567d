"""`edgevision display` as a process, configured by environment variables only, without IoT Edge: it starts,
logs its backend, draws, and stops cleanly (exit 0) on SIGTERM and SIGINT; bad settings are one-line errors."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgevision.display.backends.sensehat import SenseFramebuffer, emulator_running
from edgevision.hub.client import CONNECTION_STRING_VARIABLES, EDGE_VARIABLES


class DisplayProcess:
    """`python -m edgevision display` with its stderr collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        clean = {k: v for k, v in os.environ.items() if k not in (*EDGE_VARIABLES, *CONNECTION_STRING_VARIABLES)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgevision", "display"],
            env={**clean, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged; got:\n" + "\n".join(self.lines))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def start() -> Iterator:
    started: list[DisplayProcess] = []

    def run(**env: str) -> DisplayProcess:
        process = DisplayProcess(env)
        started.append(process)
        return process

    yield run
    for process in started:
        process.kill()


def test_runs_without_iot_edge_logs_its_backend_and_stops_on_sigterm(start, tmp_path) -> None:
    if emulator_running() or SenseFramebuffer.find() or importlib.util.find_spec("sense_hat"):
        pytest.skip("this machine has a Sense HAT or a running emulator: auto would use it")
    display = start(RENDER_DIR=str(tmp_path), TERMINAL_BLOCKS="false")
    backend = display.wait_for("display backend:")
    assert "display backend: render" in backend and str(tmp_path) in backend
    display.wait_for("display ready")
    assert (tmp_path / "current.png").is_file()
    assert display.stop(signal.SIGTERM) == 0
    assert any("stopping after 0 messages" in line for line in display.lines)
    assert not any("Traceback" in line for line in display.lines)
    assert sum("display backend:" in line for line in display.lines) == 1


def test_emulator_backend_process_owns_the_emulator_and_cleans_up_on_sigint(start) -> None:
    pytest.importorskip("sense_emu")
    from sense_emu.lock import lock_filename
    from sense_emu.screen import screen_filename

    if emulator_running():
        pytest.skip("a Sense HAT emulator is already running on this machine")
    display = start(DISPLAY_BACKEND="sense_emu", IDLE="pattern", LOW_LIGHT="false")
    assert "display backend: sense_emu" in display.wait_for("display backend:")
    display.wait_for("display ready")
    assert Path(lock_filename()).read_text().strip() == str(display.process.pid)
    assert any(Path(screen_filename()).read_bytes()[:128])  # the idle pattern is lit
    assert display.stop(signal.SIGINT) == 0
    assert not Path(lock_filename()).exists()
    assert Path(screen_filename()).read_bytes()[:128] == bytes(128)
    assert not Path(screen_filename()).with_name(f"rpi-sense-emu-client-{display.process.pid}").exists()


def test_a_bad_setting_is_a_one_line_error(start) -> None:
    display = start(THRESHOLD="high")
    assert display.process.wait(30) == 2
    display._reader.join(5)
    errors = [line for line in display.lines if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("edgevision display: error: THRESHOLD")
    assert not any("Traceback" in line for line in display.lines)


def test_a_bad_icons_file_is_a_one_line_error(start, tmp_path) -> None:
    icons = tmp_path / "icons.json"
    icons.write_text('{"icons": {"fox": {"rows": ["x"]}}}')
    display = start(ICONS_FILE=str(icons), DISPLAY_BACKEND="render")
    assert display.process.wait(30) == 2
    display._reader.join(5)
    errors = [line for line in display.lines if "error" in line]
    assert len(errors) == 1 and "icon 'fox'" in errors[0] and str(icons) in errors[0]
    assert not any("display backend" in line for line in display.lines)  # checked before opening devices


def test_preview_shows_what_tags_would_light(tmp_path) -> None:
    aliases = tmp_path / "aliases.json"
    aliases.write_text('{"dog": ["red fox"]}')
    result = subprocess.run(
        [sys.executable, "-m", "edgevision", "display", "--preview", "malamute", "red fox", "axolotl"],
        env={**os.environ, "ALIASES_FILE": str(aliases)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "'malamute': icon 'dog'" and lines[9] == "'red fox': icon 'dog'"
    assert lines[18] == "'axolotl': initial 'A'" and len(lines) == 27

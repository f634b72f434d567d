"""Module processes: started with their manifest environment, logs prefixed by name, restarted by policy."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edgevision.backoff import backoff_delay
from edgevision.errors import EdgeVisionError
from edgevision.runtime.console import Console
from edgevision.runtime.manifest import ModuleSpec

# How long a module must run before its restart back-off starts again from the first delay.
STABLE_AFTER = 60.0


def _load_prctl():  # -> the ctypes function, or None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # loaded here: the child between fork and exec must not import or load anything
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn`: the child gets SIGTERM when the runtime dies (Linux), so a killed run leaves no orphan
    brokers or modules holding 127.0.0.N:8883."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ModuleStartError(EdgeVisionError):
    """A module's command cannot be started (missing executable, bad working folder)."""


@dataclass
class RestartPolicy:
    """edgeAgent's restart policies; the delay doubles with each restart in a row, up to `max_delay`."""

    delay: float = 1.0
    max_delay: float = 30.0

    @staticmethod
    def wants_restart(policy: str, exit_code: int) -> bool:
        if policy == "always":
            return True
        # on-unhealthy as on-failure: IoT Edge's Docker runtime never reports a running module unhealthy (a
        # container's Docker health status is not read), so edgeAgent too restarts it only once it has exited
        if policy in ("on-failure", "on-unhealthy"):
            return exit_code != 0
        return False

    def backoff(self, restarts_in_a_row: int) -> float:
        return backoff_delay(restarts_in_a_row, initial=self.delay, maximum=self.max_delay)


class ModuleProcess:
    """One module as a process in its own process group (so stopping it stops its children too)."""

    def __init__(self, spec: ModuleSpec, env: dict[str, str], log_path: Path, console: Console) -> None:
        self.spec = spec
        self.env = env
        self.log_path = log_path
        self.console = console
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.in_a_row = 0
        self.exit_code: int | None = None
        self.restart_at: float | None = None  # set while waiting out a back-off
        self.finished = False  # exited and will not be restarted
        self.stopped = False  # stopped by the runtime
        self._reader: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def status(self) -> str:
        if self.process is not None and self.process.poll() is None:
            return "running"
        if self.restart_at is not None:
            return "backoff"
        if self.stopped:
            return "stopped"
        return "exited" if self.process is not None else "stopped"

    def command(self) -> list[str]:
        """What to start: the image's local entry point (a container module runs `docker run`)."""
        return list(self.spec.local.command)

    def process_env(self) -> dict[str, str]:
        """The environment of what `command()` starts: the module's own."""
        return self.env

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = self.command()
        try:
            self.process = subprocess.Popen(
                command,
                env=self.process_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # calls one preloaded C function: safe with threads
            )
        except OSError as exc:
            raise ModuleStartError(f"cannot start module {self.name} ({' '.join(command)}): {exc}") from None
        self.started_at = time.monotonic()
        self.exit_code = None
        self.restart_at = None
        self._reader = threading.Thread(target=self._pump, args=(self.process,), name=f"{self.name}-log", daemon=True)
        self._reader.start()

    def _pump(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        with open(self.log_path, "ab") as log:
            for raw in process.stdout:
                log.write(raw)
                log.flush()
                self.console.line(self.name, raw.decode("utf-8", "replace"))

    def poll(self) -> int | None:
        """The exit code once the process has ended (None while it runs or before it starts)."""
        if self.process is None:
            return None
        return self.process.poll()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait()
        if self._reader is not None:
            self._reader.join(2)
        self.restart_at = None
        self.stopped = True
        if self.exit_code is None:
            self.exit_code = self.process.returncode

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)  # type: ignore[union-attr]

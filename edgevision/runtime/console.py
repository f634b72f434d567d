"""One console for the whole run: every line prefixed by who said it (a module, the router, the runtime)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TextIO


class Console:
    """Thread-safe `name | text` lines on `stream`, copied to `log_path` when given."""

    def __init__(self, stream: TextIO | None = None, log_path: Path | None = None, width: int = 12) -> None:
        self.stream = stream or sys.stdout
        self.width = width
        self._lock = threading.Lock()
        self._file = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def widen(self, names: list[str]) -> None:
        self.width = max([self.width, *(len(n) for n in names)])

    def line(self, name: str, text: str) -> None:
        line = f"{name:<{self.width}} | {text.rstrip()}\n"
        with self._lock:
            try:
                self.stream.write(line)
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed terminal must not stop the run
            if self._file is not None:
                self._file.write(line)
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

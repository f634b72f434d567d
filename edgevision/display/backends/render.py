"""The matrix without hardware: PNG frames in a folder (current.png, current.json and a capped numbered history)
and 24-bit colour blocks in the terminal. Both are written only when the picture changes."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sys
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import numpy as np
from PIL import Image

from edgevision.display.backends.base import BackendUnavailable, Output
from edgevision.display.scene import Scene
from edgevision.files import write_atomic

log = logging.getLogger(__name__)

FRAME_NAME = re.compile(r"^frame-(\d+)\.png$")
GRID = (64, 64, 64)


def render_png(frame: np.ndarray, scale: int) -> Image.Image:
    """The matrix scaled up, each LED a `scale`-pixel square framed by a grey grid line."""
    big = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
    line = max(1, scale // 16)
    size = big.shape[0]
    for i in range(0, size, scale):
        big[i : i + line, :] = GRID
        big[:, i : i + line] = GRID
    big[size - line :, :] = GRID
    big[:, size - line :] = GRID
    return Image.fromarray(big, "RGB")


def cell_centre(row: int, col: int, scale: int) -> tuple[int, int]:
    """(x, y) of an LED's centre in a rendered PNG, clear of the grid."""
    line = max(1, scale // 16)
    return col * scale + (scale + line) // 2, row * scale + (scale + line) // 2


class PngOutput(Output):
    """current.png (replaced atomically), current.json (what it shows) and frame-NNNNNN.png, oldest pruned."""

    name = "png"

    def __init__(self, folder: Path, history: int = 100, scale: int = 32) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailable(f"RENDER_DIR {self.folder}: cannot create: {exc}") from None
        if not os.access(self.folder, os.W_OK):
            raise BackendUnavailable(f"RENDER_DIR {self.folder}: not writable")
        self.history, self.scale = history, scale
        existing = sorted((int(m.group(1)), p) for p in self.folder.iterdir() if (m := FRAME_NAME.match(p.name)))
        # a restarted module continues the numbering instead of overwriting the last run's frames
        self.sequence = existing[-1][0] if existing else 0
        self.frames: deque[Path] = deque(p for _, p in existing)

    def show(self, scene: Scene) -> None:
        self.sequence += 1
        buffer = io.BytesIO()
        render_png(scene.frame, self.scale).save(buffer, format="PNG")
        data = buffer.getvalue()
        name = f"frame-{self.sequence:06d}.png"
        try:
            if self.history > 0:
                (self.folder / name).write_bytes(data)
                self.frames.append(self.folder / name)
                self._prune()
            write_atomic(self.folder / "current.png", data)
            summary = {
                "sequence": self.sequence,
                "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "frame": name if self.history > 0 else None,
                **scene.summary(),
                "pixels": scene.frame.reshape(64, 3).tolist(),
            }
            write_atomic(self.folder / "current.json", json.dumps(summary).encode("utf-8"))
        except OSError as exc:  # a full disk must not stop the LEDs
            log.warning("render: cannot write %s: %s", self.folder, exc)

    def _prune(self) -> None:
        while len(self.frames) > self.history:
            old = self.frames.popleft()
            with contextlib.suppress(FileNotFoundError):
                old.unlink()


class TerminalOutput(Output):
    """8 lines of ANSI 24-bit background colours, two spaces per LED, one block per new picture."""

    name = "terminal"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def show(self, scene: Scene) -> None:
        self.stream.write(terminal_block(scene.frame))
        self.stream.flush()


def terminal_block(frame: np.ndarray) -> str:
    lines = []
    for row in frame:
        cells = "".join(f"\x1b[48;2;{r};{g};{b}m  " for r, g, b in row.tolist())
        lines.append(cells + "\x1b[0m")
    return "\n".join(lines) + "\n"

"""Where the picture goes, chosen once at start with one log line that says which and why.

`auto` tries the Sense HAT, then a Sense HAT emulator that is already running, then the renderer; naming a
backend tries it and falls back to the renderer. Nothing here raises for a missing backend: the renderer
always works (at worst it only logs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TextIO

from edgevision.display.backends.base import BackendUnavailable, Output
from edgevision.display.backends.render import PngOutput, TerminalOutput
from edgevision.display.backends.sensehat import open_sense_emu, open_sense_hat
from edgevision.display.settings import DisplaySettings

log = logging.getLogger("edgevision.display")

__all__ = ["BackendUnavailable", "Output", "open_outputs"]


def open_outputs(settings: DisplaySettings, stream: TextIO | None = None) -> tuple[str, list[Output]]:
    """(backend name, outputs): the LED matrix or emulator when available, PNG frames when RENDER_DIR is set,
    terminal blocks when nothing else shows the picture."""
    openers: dict[str, Callable[[], Output]] = {
        "sense_hat": lambda: open_sense_hat(settings.sensehat_fb),
        # auto attaches to a running emulator but does not start one nobody would look at
        "sense_emu": lambda: open_sense_emu(start_headless=settings.display_backend == "sense_emu"),
    }
    wanted = ["sense_hat", "sense_emu"] if settings.display_backend == "auto" else [settings.display_backend]
    problems: list[str] = []
    outputs: list[Output] = []
    name = "render"
    for candidate in wanted:
        if candidate == "render":
            break
        try:
            outputs.append(openers[candidate]())
            name = candidate
            break
        except BackendUnavailable as exc:
            problems.append(f"{candidate} unavailable: {exc}")
    outputs += _render_outputs(settings, stream, led=bool(outputs), problems=problems)
    because = f" ({'; '.join(problems)})" if problems else ""
    where = f", PNG frames in {settings.render_dir}" if any(isinstance(o, PngOutput) for o in outputs) else ""
    log.info("display backend: %s (DISPLAY_BACKEND=%s)%s%s", name, settings.display_backend, where, because)
    return name, outputs


def _render_outputs(settings: DisplaySettings, stream: TextIO | None, led: bool, problems: list[str]) -> list[Output]:
    outputs: list[Output] = []
    if settings.render_dir is not None:
        try:
            outputs.append(PngOutput(settings.render_dir, settings.render_history, settings.render_scale))
        except BackendUnavailable as exc:
            problems.append(f"png unavailable: {exc}")
    if not led and settings.terminal_blocks:
        outputs.append(TerminalOutput(stream))
    if not outputs and not led:
        problems.append("no RENDER_DIR and TERMINAL_BLOCKS=false: pictures are only logged")
    return outputs

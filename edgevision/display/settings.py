"""The display module's settings: one environment variable per field, documented by its description."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from edgevision.config import Settings

BACKENDS = ("auto", "sense_hat", "sense_emu", "render")


class DisplaySettings(Settings):
    """How `edgevision display` (the SenseHatDisplay module) decides what to show and where to show it."""

    # The backend and the renderer's output are chosen once at start; the rest may change from a twin patch.
    static_fields: ClassVar[frozenset[str]] = frozenset(
        {"display_backend", "sensehat_fb", "render_dir", "render_history", "render_scale", "terminal_blocks"}
    )

    threshold: float = Field(
        0.6, ge=0.0, le=1.0, description="Show the top tag only when its probability is strictly above this."
    )
    display_backend: Literal["auto", "sense_hat", "sense_emu", "render"] = Field(
        "auto",
        description="Where to draw: `sense_hat` (the LED matrix), `sense_emu` (the official emulator, started"
        " headless when none runs), `render` (PNG files and terminal blocks), or `auto` (the first that works,"
        " in that order; `sense_emu` only when an emulator is already running).",
    )
    sensehat_fb: Path | None = Field(
        None,
        description="The Sense HAT's framebuffer device (e.g. /dev/fb1) when /sys/class/graphics cannot tell;"
        " unset = found by its driver name `RPi-Sense FB`.",
    )
    brightness: float = Field(
        1.0, ge=0.0, le=1.0, description="Scale every colour by this factor (1 = as drawn, 0 = off)."
    )
    low_light: bool = Field(
        True, description="Use the Sense HAT's low-light gamma table (dimmer LEDs, easier on the eyes at night)."
    )
    rotation: int = Field(
        0, description="Rotate the picture clockwise by 0, 90, 180 or 270 degrees (as SenseHat.set_rotation)."
    )
    idle: Literal["pattern", "clear"] = Field(
        "pattern",
        description="Below the threshold (and before the first message): a dim `pattern` or `clear` LEDs.",
    )
    icons_file: Path | None = Field(
        None, description="JSON file of extra icons (and aliases) added to, or replacing, the bundled ones."
    )
    aliases_file: Path | None = Field(
        None, description='JSON file mapping icon names to extra tag names, e.g. {"deer": ["roe"]}.'
    )
    render_dir: Path | None = Field(
        None,
        description="Folder for the `render` backend's `current.png`, `current.json` and numbered frames (also"
        " written beside an LED backend when set); unset = terminal blocks only.",
    )
    render_history: int = Field(
        100, ge=0, le=100_000, description="Numbered frames kept in RENDER_DIR (oldest deleted first; 0 = none)."
    )
    render_scale: int = Field(32, ge=4, le=128, description="Pixels per LED in the rendered PNG.")
    terminal_blocks: bool = Field(
        True, description="The `render` backend prints each new picture as 8 lines of coloured blocks on stdout."
    )
    clear_on_exit: bool = Field(True, description="Turn the LEDs off when the module stops.")

    @field_validator("rotation")
    @classmethod
    def _right_angle(cls, value: int) -> int:
        if value not in (0, 90, 180, 270):
            raise ValueError("must be 0, 90, 180 or 270")
        return value

"""What every output does: show a scene, follow the low-light setting, and let go of its device."""

from __future__ import annotations

from abc import ABC, abstractmethod

from edgevision.display.scene import Scene


class BackendUnavailable(Exception):
    """This backend cannot run here; the message says why (shown when falling back)."""


class Output(ABC):
    """One place the picture goes: the LED matrix, the emulator, PNG files, the terminal."""

    name = "output"

    @abstractmethod
    def show(self, scene: Scene) -> None:
        """Draw the scene (its frame is final: brightness and rotation already applied)."""

    def set_low_light(self, enabled: bool) -> None:  # noqa: B027 - only LED matrices have a gamma table
        """Switch the LED's low-light gamma table."""

    def close(self, clear: bool) -> None:  # noqa: B027 - outputs without resources need nothing
        """Release the device; `clear` turns the LEDs off first."""


def pixel_list(scene: Scene) -> list[list[int]]:
    """The frame as the 64 [r, g, b] lists the SenseHat API takes, row by row."""
    return scene.frame.reshape(64, 3).tolist()

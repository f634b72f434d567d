"""The SenseHatDisplay module: shows the camera's top tag as an 8x8 icon on the Sense HAT's LEDs, the official
emulator, or PNG frames and terminal blocks. `edgevision display` runs it; icons and aliases are data files."""

from edgevision.display.icons import IconFileError, IconSet
from edgevision.display.scene import Composer, MalformedMessage, Scene, Scored, parse_predictions
from edgevision.display.settings import DisplaySettings

__all__ = [
    "Composer",
    "DisplaySettings",
    "IconFileError",
    "IconSet",
    "MalformedMessage",
    "Scene",
    "Scored",
    "parse_predictions",
]

"""The SenseHatDisplay module (`edgevision display`): shows the camera's top tag as an 8x8 icon on the Sense HAT
LEDs, the official emulator, or PNG frames and terminal blocks. Icons and aliases are data files beside this one.

Settings: `edgevision.display.settings.DisplaySettings`; logic: `edgevision.display.scene`; user guide:
docs/display.md. Nothing is imported here, so `edgevision --help` stays instant.
"""

"""`edgevision display`: the SenseHatDisplay module, configured by environment variables as in the container."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

log = logging.getLogger("edgevision.display")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "display",
        help="show the camera's top tag on the Sense HAT LEDs (or its emulator, or PNG/terminal)",
        description="Receive scoring results on input1 and show the top tag's icon. Configured by environment"
        " variables (THRESHOLD, DISPLAY_BACKEND, RENDER_DIR, ...; see docs/display.md); runs until SIGTERM/SIGINT.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgevision.display.backends import open_outputs
    from edgevision.display.icons import IconSet
    from edgevision.display.module import MODULE, Display, DisplayModule
    from edgevision.display.settings import DisplaySettings
    from edgevision.hub import connect

    # Bad variables or icon files are one-line errors (exit 2), raised before any device is opened.
    settings = DisplaySettings.from_env()
    icons = IconSet.load(settings.icons_file, settings.aliases_file)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    backend, outputs = open_outputs(settings)
    display = Display(settings, outputs, backend, icons)
    try:
        with connect(MODULE) as hub:
            module = DisplayModule(display, hub)
            module.start()
            log.info("display ready: threshold %.2f, waiting for scoring results on input1", display.settings.threshold)
            while not stop.wait(3600):
                pass
            log.info("stopping after %d messages (%d skipped)", display.messages, display.skipped)
    finally:
        display.close()
    return 0

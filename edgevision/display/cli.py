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
    parser.add_argument(
        "--preview",
        nargs="+",
        metavar="TAG",
        help="print the picture each TAG would show (with ICONS_FILE/ALIASES_FILE applied) and exit",
    )
    parser.set_defaults(func=run)


def preview(tags: list[str]) -> int:
    """Each tag's icon or initial as terminal blocks: a quick check while drawing icons or writing aliases."""
    from edgevision.display.backends.render import terminal_block
    from edgevision.display.icons import IconSet
    from edgevision.display.scene import Composer, Scored
    from edgevision.display.settings import DisplaySettings

    settings = DisplaySettings.from_env().model_copy(update={"threshold": 0.0})
    composer = Composer(settings, IconSet.load(settings.icons_file, settings.aliases_file))
    for tag in tags:
        scene = composer.compose([Scored(tag, 1.0)])
        print(f"{tag!r}: {scene.kind} {scene.icon!r}")
        print(terminal_block(scene.frame), end="")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.preview:
        return preview(args.preview)
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

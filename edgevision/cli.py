"""The one console command, `edgevision`, kept thin: each domain package registers its own subcommands.

A package's `cli.py` exposes `register(subparsers)`, adding parsers whose `func(args) -> int` does the work.
Heavy imports stay inside those functions so `edgevision --help` is instant and a missing optional extra
only affects the subcommand that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from edgevision import __version__
from edgevision.errors import EdgeVisionError

# Order is the order of `edgevision --help`.
COMMAND_PACKAGES = (
    "edgevision.classifier",  # serve, predict
    "edgevision.capture",  # capture
    "edgevision.display",  # display
    "edgevision.runtime",  # run
    "edgevision.train",  # train, iterations, publish, export
    "edgevision.batch",  # score, summarize
    "edgevision.captures",  # captures export|report|validate
    "edgevision.portal",  # portal
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgevision",
        description="Custom image classification at the edge: IoT Edge modules, trainer, batch scoring, local runtime.",
        epilog="Run `edgevision COMMAND --help` for a command's options. Docs: docs/ in the repository.",
    )
    parser.add_argument("--version", action="version", version=f"edgevision {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for package in COMMAND_PACKAGES:
        try:
            module = importlib.import_module(f"{package}.cli")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(package):
                continue  # that package has no commands yet
            raise
        module.register(subparsers)
    return parser


def configure_logging(verbose: bool = False) -> None:
    """INFO for everyone; `-v` or VERBOSE=true adds edgevision's own debug lines, not every library's."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if verbose or os.environ.get("VERBOSE", "").strip().lower() in {"1", "true", "yes", "on"}:
        logging.getLogger("edgevision").setLevel(logging.DEBUG)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except EdgeVisionError as exc:
        print(f"edgevision {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `edgevision iterations | head`: the reader left; silence Python's flush error at exit too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`edgevision captures export|report|validate`: the kept frames as a Camtrap DP package, the interactions
report, and offline validation of a package."""

from __future__ import annotations

import argparse
import sys

FORMATS = ("camtrap-dp",)


def register(subparsers: argparse._SubParsersAction) -> None:
    captures = subparsers.add_parser(
        "captures",
        help="export kept frames as a Camtrap DP package; the interactions report; validate a package",
        description="Work on what CameraCapture kept (JPEG + sidecar JSON per frame) or on a Camtrap DP package."
        " See docs/captures.md.",
    )
    captures.set_defaults(func=lambda args: _usage(captures))
    commands = captures.add_subparsers(dest="captures_command", metavar="ACTION")
    _register_export(commands)
    _register_report(commands)
    _register_validate(commands)


def _register_export(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="write a Camera Trap Data Package (Camtrap DP 1.0.2) of a capture folder",
        description="Write datapackage.json, deployments.csv, media.csv and observations.csv (and the JPEGs"
        " under media/) to OUT, then validate the package offline. Sidecars that are missing, truncated or of"
        " another version are skipped and listed.",
    )
    export.add_argument("capture_dir", metavar="CAPTURE_DIR", help="CAPTURE_DIR of a camera, or one folder per device")
    export.add_argument("--format", choices=FORMATS, default="camtrap-dp", help="package format (camtrap-dp)")
    export.add_argument("--out", required=True, metavar="DIR", help="the package folder")
    export.add_argument(
        "--deployment",
        action="extend",
        nargs="+",
        default=[],
        metavar="ID",
        help="export only these deployments (device names or their deploymentID); default: all",
    )
    export.add_argument("--mapping", metavar="FILE", help="JSON: tags -> scientific names, devices -> places")
    export.add_argument(
        "--media-base-url",
        metavar="URL",
        help="reference each JPEG as URL/<path in CAPTURE_DIR> (e.g. its blob) instead of copying it to media/",
    )
    export.add_argument("--threshold", type=_probability, default=0.5, help="a tag's minimum probability (0.5)")
    export.add_argument("--overwrite", action="store_true", help="replace a package already in DIR")
    export.add_argument("--no-validate", action="store_true", help="skip the validation at the end")
    export.set_defaults(func=run_export)


def _register_report(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report",
        help="the interactions report: report.html with PNG plots and the counts as CSV",
        description="Kept frames per tag per hour of day and per day, tags in the same frame, interaction events"
        " (an animal frame and a partner frame within --window-seconds on one device), per device, the top time"
        " windows; written to OUT/report.html (self-contained) with the PNGs and CSVs beside it. SOURCE is a"
        " capture folder or a Camtrap DP package (a folder with datapackage.json).",
    )
    report.add_argument("source", metavar="SOURCE", help="capture folder, or Camtrap DP package folder")
    report.add_argument("--out", required=True, metavar="DIR", help="where report.html, PNGs and CSVs go")
    report.add_argument(
        "--window-seconds", type=_positive, default=30.0, metavar="N", help="interaction window, seconds (30)"
    )
    report.add_argument("--animal", action="append", metavar="TAG", help="the animal's tag (repeatable; deer)")
    report.add_argument(
        "--with", dest="partners", action="append", metavar="TAG", help="a partner's tag (repeatable; person, dog)"
    )
    report.add_argument("--mapping", metavar="FILE", help="JSON mapping: a package's scientific names -> tags")
    report.add_argument("--threshold", type=_probability, default=0.5, help="a tag's minimum probability (0.5)")
    report.add_argument("--timezone", default="UTC", metavar="NAME", help="hours and dates in this zone (UTC)")
    report.set_defaults(func=run_report)


def _register_validate(commands: argparse._SubParsersAction) -> None:
    validate = commands.add_parser(
        "validate",
        help="validate a Camtrap DP 1.0.2 package offline (profile and table schemas)",
        description="Check datapackage.json against the Camtrap DP profile and each table against its schema,"
        " without fetching anything: the schemas are read from --schemas (default: the bundled copy).",
    )
    validate.add_argument("package", metavar="PACKAGE", help="the package folder or its datapackage.json")
    validate.add_argument("--schemas", metavar="DIR", help="folder with the profile and the three table schemas")
    validate.set_defaults(func=run_validate)


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {value}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return value


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _print_skipped(skipped: list) -> None:
    if skipped:
        print(f"skipped {len(skipped)} files:", file=sys.stderr)
        for item in skipped:
            print(f"  {item.path}: {item.reason}", file=sys.stderr)


def run_export(args: argparse.Namespace) -> int:
    _require_frictionless()
    from edgevision.captures.camtrap import export_camtrap_dp
    from edgevision.captures.mapping import load_mapping
    from edgevision.captures.validate import validate_package

    result = export_camtrap_dp(
        args.capture_dir,
        args.out,
        mapping=load_mapping(args.mapping),
        deployments=args.deployment,
        media_base_url=args.media_base_url,
        threshold=args.threshold,
        overwrite=args.overwrite,
    )
    _print_skipped(result.skipped)
    if not args.no_validate:
        validate_package(result.out)
    checked = "" if args.no_validate else ", valid Camtrap DP 1.0.2"
    print(
        f"exported {result.media} media, {result.observations} observations, {result.deployments} deployments"
        f" -> {result.out}{checked}"
    )
    return 0


def run_report(args: argparse.Namespace) -> int:
    from edgevision.captures.mapping import load_mapping
    from edgevision.captures.records import is_package, read_captures, read_package
    from edgevision.captures.report import ReportOptions, write_report

    options = ReportOptions(
        animals=args.animal or ["deer"],
        partners=args.partners or ["person", "dog"],
        window=args.window_seconds,
        zone=_zone(args.timezone),
        zone_name=args.timezone,
    )
    mapping = load_mapping(args.mapping)
    source = (
        read_package(args.source, mapping) if is_package(args.source) else read_captures(args.source, args.threshold)
    )
    _print_skipped(source.skipped)
    report = write_report(source, str(args.source), args.out, options)
    print(
        f"report of {report.frames} frames, {len(report.events)} interaction events"
        f" ({len(source.skipped)} files skipped) -> {report.out / 'report.html'}"
    )
    return 0


def _zone(name: str):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from edgevision.captures.errors import CapturesError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CapturesError(f"--timezone: unknown time zone {name!r} (e.g. UTC, Europe/Zurich)") from None


def run_validate(args: argparse.Namespace) -> int:
    _require_frictionless()
    from edgevision.captures.validate import validate_package

    validate_package(args.package, args.schemas)
    print(f"{args.package}: valid Camtrap DP 1.0.2")
    return 0


def _require_frictionless() -> None:
    from edgevision.captures.errors import CapturesError

    try:
        import frictionless  # noqa: F401
    except ModuleNotFoundError:
        raise CapturesError("validation needs frictionless: pip install 'edgevision[captures]'") from None

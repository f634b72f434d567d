"""`edgevision run [MANIFEST] [--duration S] [--out DIR]`: the deployment on this machine (the demo by default)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run",
        help="run a deployment manifest locally: brokers, routes, twins and modules (no Azure; Docker only with"
        " --containers)",
        description="Run an IoT Edge deployment manifest (template or expanded) on this machine. With no"
        " manifest, runs the demo: the bundled photos through camera, scorer and display.",
    )
    run.add_argument(
        "manifest", nargs="?", type=Path, help="deployment.template.json or an expanded manifest (default: the demo)"
    )
    run.add_argument(
        "--duration",
        type=_seconds,
        metavar="S",
        help="stop after S seconds (default: at Ctrl-C, or once every module whose restartPolicy lets it"
        " finish has finished)",
    )
    run.add_argument("--out", type=Path, help="folder for every artefact of the run (default: edgevision-runs/<time>)")
    run.add_argument(
        "--env-file", type=Path, help=".env file for template variables (default: the one beside the manifest)"
    )
    run.add_argument("--device-id", default="edgevision-local", help="device id the modules see (default: %(default)s)")
    run.add_argument(
        "--image", action="append", default=[], metavar="IMAGE=COMMAND", help="run IMAGE with COMMAND (repeatable)"
    )
    run.add_argument(
        "--set", action="append", default=[], metavar="VAR=VALUE", help="template variable (repeatable; wins over .env)"
    )
    run.add_argument(
        "--containers",
        action="store_true",
        help="run each module as a container of its manifest's image (built by scripts/images.sh), as edgeAgent"
        " does; a Docker engine is needed (scripts/docker.sh)",
    )
    run.add_argument(
        "--portal",
        action="store_true",
        help="the demo with the optional custom-vision-portal module beside the others: the camera's kept frames"
        " appear in its project 'demo camera' (docs/portal.md)",
    )
    run.add_argument(
        "--platform",
        choices=("amd64", "arm64v8", "arm32v7"),
        help="with --containers: the platform of ${MODULES.X} images (default: this machine's)",
    )
    run.add_argument(
        "--check",
        action="store_true",
        help="only validate the manifest and exit (with --containers: also that the engine has every image)",
    )
    run.set_defaults(func=handle)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def handle(args: argparse.Namespace) -> int:
    from edgevision.runtime.runner import RunOptions, Runtime, default_out, image_overrides

    variables = {}
    for pair in args.set:
        key, sep, value = pair.partition("=")
        if not sep:
            from edgevision.runtime.manifest import ManifestError

            raise ManifestError([f"--set {pair!r}: expected VAR=VALUE"])
        variables[key.strip()] = value
    out = args.out or default_out()
    if args.manifest is None:
        from edgevision.runtime.demo import prepare_demo

        manifest, demo_variables = prepare_demo(out, portal=args.portal)
        variables = {**demo_variables, **variables}
    else:
        manifest = args.manifest
    options = RunOptions(
        manifest=manifest,
        out=out,
        duration=args.duration,
        device_id=args.device_id,
        env_file=args.env_file,
        images=image_overrides(args.image),
        variables=variables,
        containers=args.containers,
        platform=args.platform,
    )
    runtime = Runtime(options)
    if args.check:
        deployment = runtime.check()
        images = ""
        if args.containers:  # the engine answers and has every module's image (ContainerError names the missing)
            plans = runtime.plan_containers(deployment)
            images = f"; {sum(p.image is not None for p in plans.values())} images on this engine"
        modules = ", ".join(deployment.modules)
        print(f"{manifest}: OK: {len(deployment.modules)} modules ({modules}), {len(deployment.routes)} routes{images}")
        return 0
    code = runtime.run()
    print(f"\nrun folder: {out.resolve()}")
    print(f"  upstream log: {(out / 'upstream.jsonl').resolve()}")
    for name in ("captures", "display"):
        if (out / name).is_dir():
            files = sum(1 for p in (out / name).rglob("*") if p.is_file() and not p.name.startswith("."))
            print(f"  {name}: {(out / name).resolve()} ({files} files)")  # hidden: the upload journal
    if (out / "blobs.json").is_file():
        blobs = json.loads((out / "blobs.json").read_text(encoding="utf-8"))
        print(f"  blobs: {(out / 'blobs.json').resolve()} ({len(blobs)} blobs in the local blob module)")
    print(f"  logs: {(out / 'logs').resolve()}")
    return code

"""`edgevision train | iterations | publish | export`: the Custom Vision portal's workflow, offline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    from edgevision.train.settings import TrainSettings

    fields = TrainSettings.model_fields
    train = subparsers.add_parser(
        "train",
        help="train a classifier on labelled images (a new project iteration)",
        description="Train on DATA: a folder with one sub-folder of images per tag (multi-class), or a CSV"
        " of path,tags with tags separated by ';' (multi-label). Writes a new iteration into --project.",
    )
    train.add_argument("data", metavar="DATA", help="folder of tag folders, or a multi-label CSV")
    train.add_argument("--project", required=True, metavar="DIR", help="project folder (created if new)")
    train.add_argument("--name", help="project name for a new project (default: the folder name)")
    for option, field in (
        ("--resize", "resize"),
        ("--augment", "augment"),
        ("--folds", "folds"),
        ("--threshold", "threshold"),
        ("--l2", "l2"),
        ("--seed", "seed"),
        ("--min-images", "min_images"),
        ("--negative-tag", "negative_tag"),
        ("--threads", "threads"),
        ("--cache", "cache"),
    ):
        info = fields[field]
        choices = getattr(info.annotation, "__args__", None) if field in {"resize", "augment"} else None
        train.add_argument(
            option,
            dest=field,
            type=type(info.default) if choices is None else str,
            choices=choices,
            help=f"{info.description} (default: {info.default})",
        )
    train.add_argument(
        "--no-balance",
        dest="balance",
        action="store_false",
        default=None,
        help="do not weight tags equally (default: balance)",
    )
    train.add_argument(
        "--training",
        choices=("regular", "advanced"),
        default="regular",
        help="regular: a linear head on frozen features (seconds); advanced: fine-tune the network's last blocks"
        " with torch (minutes; the `finetune` extra). Default: regular",
    )
    train.add_argument(
        "--budget-minutes", type=float, default=10.0, help="advanced: time for the whole run (default: 10)"
    )
    train.add_argument("--max-epochs", type=int, default=30, help="advanced: most epochs (default: 30)")
    train.add_argument("--json", action="store_true", help="print the iteration summary as JSON")
    train.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars (default: when stderr is a terminal)",
    )
    train.set_defaults(func=_train)

    iterations = subparsers.add_parser("iterations", help="list a project's iterations and their metrics")
    iterations.add_argument("--project", required=True, metavar="DIR")
    iterations.add_argument("--json", action="store_true", help="print JSON")
    iterations.set_defaults(func=_iterations)

    publish = subparsers.add_parser(
        "publish",
        help="publish an iteration under a name (served at .../classify/iterations/NAME/image)",
        description="Copy an iteration's model to <project>/published/NAME/ (model.onnx + labels.txt);"
        " `edgevision serve --published <project>/published` serves it by that name.",
    )
    publish.add_argument("--project", required=True, metavar="DIR")
    publish.add_argument("--iteration", type=int, metavar="N", help="iteration number (required unless --unpublish)")
    publish.add_argument("--name", required=True, help="published name: letters, digits, '.', '_', '-'")
    publish.add_argument("--replace", action="store_true", help="move an existing name to this iteration")
    publish.add_argument("--unpublish", action="store_true", help="remove the published name instead")
    publish.set_defaults(func=_publish)

    export = subparsers.add_parser(
        "export", help="write an iteration's model.onnx + labels.txt + cvexport.manifest to a folder"
    )
    export.add_argument("--project", required=True, metavar="DIR")
    export.add_argument("--iteration", type=int, required=True, metavar="N")
    export.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    export.add_argument(
        "--quantize",
        metavar="TYPE",
        help="int8: a statically quantized model (faster on CPUs, e.g. a Raspberry Pi), calibrated on the"
        " iteration's training images, its held-out accuracy recorded next to the float model's"
        " (built once, kept in the iteration). Default: the float model",
    )
    export.set_defaults(func=_export)


def _train(args) -> int:
    from edgevision.train.settings import TrainSettings
    from edgevision.train.trainer import train

    overrides = {field: getattr(args, field, None) for field in TrainSettings.model_fields}
    settings = TrainSettings.from_env(**overrides)
    if args.training == "advanced":
        result = _train_advanced(args, settings)
    else:
        result = train(args.data, args.project, settings, name=args.name, show_progress=args.progress)
    info, metrics = result.iteration.info, result.metrics
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"iteration {info['number']} of {result.project.name} ({info['id']}) in {result.seconds:.1f} s")
    print(
        f"  {metrics['images']} images, {len(info['tags'])} tags; held-out ({metrics['evaluation']['method']}):"
        f" precision {metrics['precision']:.3f} recall {metrics['recall']:.3f}"
        f" mAP {metrics['meanAveragePrecision']:.3f} accuracy {metrics['accuracy']:.3f}"
        f" at threshold {metrics['threshold']:g}"
    )
    for tag in metrics["tags"]:
        print(
            f"  {tag['tag']:<24} {tag['images']:>5} images  precision {tag['precision']:.3f}"
            f"  recall {tag['recall']:.3f}  AP {tag['averagePrecision']:.3f}"
        )
    if metrics["skipped"]:
        print(f"  skipped {len(metrics['skipped'])} unreadable file(s); see the report")
    conflicts = sum(d["conflict"] for d in metrics["duplicates"])
    if metrics["duplicates"]:
        print(f"  {len(metrics['duplicates'])} duplicate image(s), {conflicts} under different tags; see the report")
    print(f"  report: {result.iteration.dir / 'report.html'}")
    print(f"  model:  {result.iteration.model_dir}")
    return 0


def _train_advanced(args, settings):
    from edgevision.train.errors import TrainError

    if args.budget_minutes <= 0 or args.max_epochs < 1:
        raise TrainError("--budget-minutes must be above 0 and --max-epochs at least 1")
    try:
        from edgevision.train.finetune import AdvancedOptions, train_advanced
    except ImportError as exc:
        raise TrainError(f"advanced training needs torch ({exc.name}): pip install -e '.[finetune]'") from None
    options = AdvancedOptions(budget_minutes=args.budget_minutes, max_epochs=args.max_epochs)
    return train_advanced(args.data, args.project, settings, options, name=args.name, show_progress=args.progress)


def _iterations(args) -> int:
    from edgevision.train.project import Project

    project = Project.open(args.project)
    rows = []
    for iteration in project.iterations():
        info = dict(iteration.info)
        info["published"] = project.publish_names(iteration.number)
        rows.append(info)
    if args.json:
        print(json.dumps({"project": {k: project.data[k] for k in ("id", "name")}, "iterations": rows}, indent=2))
        return 0
    print(f"{project.name} ({project.id}), {project.classification_type}")
    if not rows:
        print("  no iterations yet")
        return 0
    header = f"{'#':>3}  {'created':<25} {'images':>6} {'prec':>6} {'recall':>6} {'mAP':>6} {'acc':>6}"
    print(f"  {header}  {'settings':<18} published")
    for info in rows:
        m = info["metrics"]
        line = (
            f"  {info['number']:>3}  {info['created']:<25} {info['dataset']['images']:>6}"
            f" {m['precision']:>6.3f} {m['recall']:>6.3f} {m['meanAveragePrecision']:>6.3f} {m['accuracy']:>6.3f}"
            f"  {info['settings']['resize'] + '/' + info['settings']['augment']:<18} {', '.join(info['published'])}"
        )
        print(line.rstrip())
    return 0


def _publish(args) -> int:
    from edgevision.train.errors import ProjectError
    from edgevision.train.project import Project

    project = Project.open(args.project)
    if args.unpublish:
        project.unpublish(args.name)
        print(f"unpublished {args.name}")
        return 0
    if args.iteration is None:
        raise ProjectError("--iteration N is required to publish")
    out = project.publish(args.iteration, args.name, replace=args.replace)
    print(f"published iteration {args.iteration} as {args.name}: {out}")
    print(f"  serve it: edgevision serve --published {project.published_dir}")
    return 0


def _export(args) -> int:
    from edgevision.train.export import copy_model_dir
    from edgevision.train.project import Project

    project = Project.open(args.project)
    out = Path(args.out)
    if args.quantize is None:
        copy_model_dir(project.iteration(args.iteration).model_dir, out)
        print(f"exported iteration {args.iteration} to {out}")
        return 0
    from edgevision.train.flavours import check_flavour, quantized_model_dir

    check_flavour(args.quantize)
    copy_model_dir(quantized_model_dir(project, args.iteration, args.quantize), out)
    info = project.iteration(args.iteration).info
    scored, float_metrics = info["quantized"][args.quantize], info["metrics"]
    print(f"exported iteration {args.iteration} ({args.quantize}) to {out}")
    print(
        f"  held-out accuracy {scored['accuracy']:.3f} ({args.quantize}) vs {float_metrics['accuracy']:.3f} (float),"
        f" mAP {scored['meanAveragePrecision']:.3f} vs {float_metrics['meanAveragePrecision']:.3f}"
    )
    return 0

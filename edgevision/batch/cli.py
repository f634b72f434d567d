"""`edgevision score` (batch scoring, local or Spark) and `edgevision summarize` (tag shares per folder)."""

from __future__ import annotations

import argparse
import os
import sys

ENGINES = ("local", "spark")


def register(subparsers: argparse._SubParsersAction) -> None:
    score = subparsers.add_parser(
        "score",
        help="score a folder, glob or Spark path of images into Parquet",
        description="Score every image under SOURCE with a model and write OUT/scores.parquet (one row per file:"
        " path, folder, top tag and probability, all probabilities, model and iteration id, error). Files that"
        " cannot be decoded get an error row; the job goes on. See docs/batch.md.",
    )
    add_score_arguments(score)
    score.set_defaults(func=run_score)

    summarize = subparsers.add_parser(
        "summarize",
        help="count and share of each top tag per folder of a scored run",
        description="Per-folder counts and shares of each top tag of OUT/scores.parquet: printed, and written"
        " as OUT/summary-<by>.csv and a bar chart OUT/summary-<by>.png.",
    )
    summarize.add_argument("out", metavar="OUT", help="the --out folder of `edgevision score`")
    summarize.add_argument(
        "--by",
        default="folder",
        metavar="folder|LEVEL",
        help="group by the file's whole folder (default) or by its first LEVEL folder levels (1 = top folder)",
    )
    summarize.set_defaults(func=run_summarize)


def add_score_arguments(parser: argparse.ArgumentParser, engine: bool = True) -> None:
    parser.add_argument("source", metavar="SOURCE", help="folder (recursive), glob, or (spark) any path Spark reads")
    parser.add_argument("--model", metavar="DIR", help="model folder or .onnx file (env MODEL_DIR; default: bundled)")
    parser.add_argument("--out", required=True, metavar="OUT", help="output folder (scores.parquet, run.json)")
    if engine:
        parser.add_argument("--engine", choices=ENGINES, default="local", help="local process pool (default) or spark")
    parser.add_argument("--master", metavar="URL", help="spark: master URL (default: spark-submit's, else local[*])")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="spark: extra Spark setting")
    if engine:
        parser.add_argument("--workers", type=int, help="local: scoring processes (env BATCH_WORKERS; default: cores)")
    parser.add_argument("--batch-size", type=int, help="images per inference call (env BATCH_SIZE; default 32)")
    parser.add_argument("--csv", action="store_true", help="also write OUT/scores.csv")
    parser.add_argument("--overwrite", action="store_true", help="replace the scores of an earlier run in OUT")


def run_score(args: argparse.Namespace) -> int:
    from edgevision.batch.output import prepare
    from edgevision.batch.settings import BatchSettings
    from edgevision.config import ConfigError

    workers = getattr(args, "workers", None)
    settings = BatchSettings.from_env(model_dir=args.model, workers=workers, batch_size=args.batch_size)
    conf = dict(_key_value(item) for item in args.conf)
    if args.engine == "local" and (args.master or conf):
        raise ConfigError("--master and --conf apply to --engine spark only")
    if args.engine == "spark":
        from edgevision.batch.sources import is_remote
        from edgevision.batch.spark_engine import check_spark_available

        check_spark_available()  # before anything slow, so a missing Java is a one-line error
        if not is_remote(args.out):
            prepare(args.out, args.overwrite, args.csv)
        return _score_spark(args, settings, conf)
    prepare(args.out, args.overwrite, args.csv)
    return _score_local(args, settings)


def _score_local(args, settings) -> int:
    from edgevision.batch.local import score_local
    from edgevision.batch.output import SCORES, write_run
    from edgevision.batch.sources import local_files

    source = local_files(args.source)
    result = score_local(
        source.root,
        source.files,
        str(settings.model_dir) if settings.model_dir else None,
        args.out,
        csv=args.csv,
        workers=settings.workers,
        batch_size=settings.batch_size,
        chunk_size=settings.chunk_size,
    )
    write_run(
        args.out,
        source=args.source,
        engine="local",
        model=result.model,
        images=result.images,
        errors=result.errors,
        seconds=result.seconds,
        workers=result.workers,
    )
    _report(result.images, result.errors, result.seconds, os.path.join(args.out, SCORES))
    return 0


def _score_spark(args, settings, conf: dict[str, str]) -> int:
    from edgevision.batch.output import SCORES
    from edgevision.batch.spark_engine import score_spark

    result = score_spark(
        args.source, args.out, settings=settings, master=args.master, csv=args.csv, overwrite=args.overwrite, conf=conf
    )
    seconds = result.session_seconds + result.job_seconds
    _report(result.images, result.errors, seconds, result.output.rstrip("/") + "/" + SCORES)
    return 0


def _report(images: int, errors: int, seconds: float, where: str) -> None:
    rate = images / seconds if seconds else 0.0
    print(f"scored {images} files ({errors} errors) in {seconds:.1f} s ({rate:.1f} img/s) -> {where}")


def _key_value(item: str) -> tuple[str, str]:
    from edgevision.config import ConfigError

    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--conf expects KEY=VALUE, got {item!r}")
    return key.strip(), value.strip()


def run_summarize(args: argparse.Namespace) -> int:
    from edgevision.batch.summary import summarize

    summary = summarize(args.out, args.by)
    sys.stdout.write(summary.text + "\n")
    print(f"wrote {summary.csv} and {summary.png}")
    return 0

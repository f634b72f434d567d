"""Batch scoring benchmark: the local engine (process pool) against Spark local[N], same machine, same run.

    .venv/bin/python bench/bench_batch.py [--sizes 1000,10000] [--model DIR] [--cores 2] [--json]

Builds SIZE-image folders from the aerial tiles of ../shared (symlinks, the tiles repeated), scores each with
both engines through the same library calls the commands use (Parquet written, rows sorted), and reports
img/s, Spark's fixed start-up cost (session + first Python workers) and how time grows with the image count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("EDGEVISION_SHARED", ROOT.parent / "shared"))
TILES = SHARED / "datasets" / "aerial-small" / "train"


def build_tree(root: Path, size: int, tiles: list[Path]) -> Path:
    """`size` symlinks to the tiles, 500 per folder (area-NN), like a county's tile archive."""
    folder = root / f"tiles-{size}"
    for i in range(size):
        target = folder / f"area-{i // 500:02d}" / f"{i:06d}-{tiles[i % len(tiles)].name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(tiles[i % len(tiles)], target)
    return folder


def run_local(folder: Path, out: Path, model: str | None, workers: int) -> float:
    from edgevision.batch.local import score_local
    from edgevision.batch.output import prepare
    from edgevision.batch.sources import local_files

    started = time.perf_counter()
    prepare(str(out), True, False)
    source = local_files(str(folder))
    result = score_local(source.root, source.files, model, str(out), workers=workers, progress=False)
    assert result.images == len(source.files) and result.errors == 0
    return time.perf_counter() - started


def run_spark(folder: Path, out: Path, session, settings) -> float:
    from edgevision.batch.spark_engine import score_spark

    started = time.perf_counter()
    result = score_spark(str(folder), str(out), settings=settings, overwrite=True, session=session)
    assert result.errors == 0
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="image counts, comma-separated")
    parser.add_argument("--model", help="model folder (default: the bundled ImageNet MobileNetV2)")
    parser.add_argument("--cores", type=int, default=2, help="local workers and Spark local[N]")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    if not TILES.is_dir():
        print(f"skipped: {TILES} not found (set EDGEVISION_SHARED)")
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    tiles = sorted(TILES.rglob("*.png"))
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        return _bench(args, sizes, tiles, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench(args, sizes: list[int], tiles: list[Path], work: Path) -> int:
    from edgevision.batch.settings import BatchSettings
    from edgevision.batch.spark_engine import spark_session

    settings = BatchSettings(model_dir=args.model)
    folders = {size: build_tree(work, size, tiles) for size in sizes}
    warmup = build_tree(work, 40, tiles)

    started = time.perf_counter()
    session = spark_session(f"local[{args.cores}]", {"spark.ui.enabled": "false"})
    session_seconds = time.perf_counter() - started
    first_job = run_spark(warmup, work / "out-warmup", session, settings)  # starts the Python workers
    warm_job = run_spark(warmup, work / "out-warmup", session, settings)

    rows = []
    for size in sizes:
        local = run_local(folders[size], work / f"out-local-{size}", args.model, args.cores)
        spark = run_spark(folders[size], work / f"out-spark-{size}", session, settings)
        rows.append({"images": size, "local_s": local, "spark_s": spark})
        print(
            f"{size:>6} images: local {local:6.1f} s ({size / local:5.1f} img/s)   spark {spark:6.1f} s"
            f" ({size / spark:5.1f} img/s, {local / spark:.2f}x local)",
            flush=True,
        )
    session.stop()

    fixed = session_seconds + first_job - warm_job
    report = {
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "model": args.model or "bundled imagenet-mobilenetv2 (1000 tags)",
        "cores": args.cores,
        "spark_session_s": session_seconds,
        "spark_first_job_40_s": first_job,
        "spark_warm_job_40_s": warm_job,
        "spark_fixed_startup_s": fixed,
        "runs": rows,
    }
    print()
    print(markdown(report))
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


def markdown(report: dict) -> str:
    lines = [
        "| images | local engine (N processes) | Spark local[N], warm session | Spark + fixed start-up"
        " | Spark speed / local |",
        "|---:|---:|---:|---:|---:|",
    ]
    fixed = report["spark_fixed_startup_s"]
    for row in report["runs"]:
        n, local, spark = row["images"], row["local_s"], row["spark_s"]
        cold = spark + fixed
        lines.append(
            f"| {n:,} | {local:.1f} s ({n / local:.0f} img/s) | {spark:.1f} s ({n / spark:.0f} img/s)"
            f" | {cold:.1f} s ({n / cold:.0f} img/s) | {local / spark:.2f}x warm, {local / cold:.2f}x cold |"
        )
    runs = report["runs"]
    if len(runs) >= 2:
        a, b = runs[0], runs[-1]
        extra = b["images"] - a["images"]
        lines.append("")
        lines.append(
            f"From {a['images']:,} to {b['images']:,} images: local +{b['local_s'] - a['local_s']:.1f} s"
            f" ({extra / (b['local_s'] - a['local_s']):.0f} img/s marginal), Spark +{b['spark_s'] - a['spark_s']:.1f} s"
            f" ({extra / (b['spark_s'] - a['spark_s']):.0f} img/s marginal)."
        )
    lines.append(
        f"Spark fixed start-up: {fixed:.1f} s (session {report['spark_session_s']:.1f} s, first Python workers +"
        f" model {report['spark_first_job_40_s'] - report['spark_warm_job_40_s']:.1f} s)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

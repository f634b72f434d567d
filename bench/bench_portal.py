"""The portal through the official SDK: the 360 aerial tiles from upload to a prediction, and paging.

    .venv/bin/python bench/bench_portal.py [--data ../shared/datasets/aerial-small/train] [--list 5000]

1. A real `edgevision portal` process; the SDK uploads every tile in batches of 64, creates the tags, trains
   (polling get_iteration every 0.5 s), publishes and classifies one tile. Baseline in the same run:
   `edgevision train` on the same folder in a fresh project (same trainer, no HTTP, no database), so the
   ratio is what the portal adds.
2. Paging: `--list` distinct images (re-encoded tiles) in one project, then every page of 256 through
   get_tagged_images; the first, median and last page latencies (flat = the last costs what the first does).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from tests.conftest import free_port, wait_for_http  # noqa: E402

KEY = "bench-key"


def start_portal(data: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "TRAINING_KEY": KEY, "PREDICTION_KEY": KEY}
    process = subprocess.Popen(
        [sys.executable, "-m", "edgevision", "portal", "--data", str(data), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/health", process=process)
    return process, url


def clients(url: str):
    from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
    from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
    from msrest.authentication import ApiKeyCredentials

    return (
        CustomVisionTrainingClient(url, ApiKeyCredentials(in_headers={"Training-key": KEY})),
        CustomVisionPredictionClient(url, ApiKeyCredentials(in_headers={"Prediction-key": KEY})),
    )


def upload(trainer, project_id: str, items: list[tuple[bytes, str]]) -> None:
    from azure.cognitiveservices.vision.customvision.training.models import (
        ImageFileCreateBatch,
        ImageFileCreateEntry,
    )

    for start in range(0, len(items), 64):
        entries = [
            ImageFileCreateEntry(name=f"{i}.jpg", contents=data, tag_ids=[tag])
            for i, (data, tag) in enumerate(items[start : start + 64], start)
        ]
        summary = trainer.create_images_from_files(project_id, ImageFileCreateBatch(images=entries))
        if not summary.is_batch_successful:
            raise SystemExit(f"upload failed: {[i.status for i in summary.images if i.status != 'OK'][:3]}")


def whole_project(url: str, data: Path) -> dict:
    trainer, predictor = clients(url)
    timings = {}
    started = time.monotonic()
    project = trainer.create_project("aerial")
    folders = sorted(p for p in data.iterdir() if p.is_dir())
    tags = {f.name: trainer.create_tag(project.id, f.name).id for f in folders}
    items = [(p.read_bytes(), tags[f.name]) for f in folders for p in sorted(f.iterdir()) if p.is_file()]
    upload(trainer, project.id, items)
    timings["upload"] = time.monotonic() - started
    iteration = trainer.train_project(project.id)
    while iteration.status == "Training":
        time.sleep(0.5)
        iteration = trainer.get_iteration(project.id, iteration.id)
    if iteration.status != "Completed":
        raise SystemExit(f"training failed: {iteration.training_error_details}")
    timings["train"] = time.monotonic() - started - timings["upload"]
    trainer.publish_iteration(project.id, iteration.id, "aerial", "bench")
    result = predictor.classify_image(project.id, "aerial", items[0][0])
    timings["total"] = time.monotonic() - started
    timings["images"] = len(items)
    timings["top"] = result.predictions[0].tag_name
    return timings


def baseline_train(data: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "edgevision", "train", str(data), "--project", f"{tmp}/p"],
            check=True,
            capture_output=True,
        )
        return time.monotonic() - started


def paging(url: str, data: Path, count: int) -> dict:
    trainer, _ = clients(url)
    project = trainer.create_project("paging")
    tag = trainer.create_tag(project.id, "tile").id
    tiles = [p for f in sorted(data.iterdir()) if f.is_dir() for p in sorted(f.iterdir())]
    items = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.open(tiles[i % len(tiles)]).convert("RGB").resize((64, 64)).save(
            buffer, "JPEG", quality=50 + i // len(tiles)
        )
        items.append((buffer.getvalue(), tag))
    upload(trainer, project.id, items)
    pages = []
    for skip in range(0, count, 256):
        started = time.perf_counter()
        listed = trainer.get_tagged_images(project.id, take=256, skip=skip)
        pages.append((time.perf_counter() - started) * 1000)
        assert listed
    return {
        "images": count,
        "pages": len(pages),
        "firstMs": round(pages[0], 1),
        "medianMs": round(statistics.median(pages), 1),
        "lastMs": round(pages[-1], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "aerial-small" / "train")
    parser.add_argument("--list", type=int, default=5000, help="images for the paging measurement")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: not found (the shared aerial tiles)")
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_portal(Path(tmp) / "portal")
        try:
            project = whole_project(url, args.data)
            baseline = baseline_train(args.data)
            listing = paging(url, args.data, args.list)
        finally:
            process.terminate()
            process.wait(30)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "sdkWholeProjectSeconds": {k: round(v, 1) if isinstance(v, float) else v for k, v in project.items()},
        "edgevisionTrainSeconds": round(baseline, 1),
        "ratioToTrainCommand": round(project["total"] / baseline, 2),
        "paging": listing,
        "lastPageOverFirst": round(listing["lastMs"] / listing["firstMs"], 2),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

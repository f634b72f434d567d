"""Regular vs advanced training on the shared aerial tiles, scored on images neither chose anything with.

    .venv/bin/python bench/bench_finetune.py [--data ../shared/datasets/aerial-small/train] [--seeds 0 1 2]
        [--budget-minutes 8] [--max-epochs 12]

For each seed, stratified folds split the tiles 3/5 train, 1/5 validation, 1/5 test. Regular training is the
linear head on frozen features of the train part (dihedral views), as `edgevision train` fits it; advanced
is `edgevision train --training advanced` (the validation part picks its epoch). Both are scored on the same
test part, which nothing looked at before. Also: wall time of each, and the exported models' inference time
on the same tiles (one thread, the scoring core), regular first as the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgevision.models import decode_image, load_model  # noqa: E402
from edgevision.train.dataset import load_dataset  # noqa: E402
from edgevision.train.features import AUGMENTATIONS, FeatureExtractor  # noqa: E402
from edgevision.train.finetune import AdvancedOptions, train_advanced  # noqa: E402
from edgevision.train.metrics import evaluate  # noqa: E402
from edgevision.train.settings import TrainSettings  # noqa: E402
from edgevision.train.trainer import fit, stratified_folds, train  # noqa: E402


def regular_on_test_fold(data: Path, settings: TrainSettings) -> tuple[dict, float]:
    started = time.monotonic()
    dataset = load_dataset(data, min_images=settings.min_images)
    targets = dataset.targets()
    folds = stratified_folds(targets, 5, settings.seed)
    test, training = folds == 0, folds >= 2
    extractor = FeatureExtractor(settings.resize)
    refs = [s.ref for s in dataset.samples]
    features = extractor.extract([refs[i] for i in np.flatnonzero(training)], AUGMENTATIONS[settings.augment])
    head = fit(features, targets[training], settings, dataset.multilabel)
    plain = extractor.extract([refs[i] for i in np.flatnonzero(test)], ("id",))[:, 0]
    metrics = evaluate(head.probabilities(plain), targets[test], dataset.tags, multilabel=False, threshold=0.5)
    return metrics, time.monotonic() - started


def inference_ms(model_dir: Path, tiles: list[Path], rounds: int = 3) -> float:
    model = load_model(model_dir, intra_op_threads=1)
    images = [decode_image(p.read_bytes()) for p in tiles]
    batches = [model.preprocess(image)[np.newaxis] for image in images]
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for batch in batches:
            model.infer(batch)
        times.append((time.perf_counter() - started) * 1000 / len(batches))
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "aerial-small" / "train")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget-minutes", type=float, default=8.0)
    parser.add_argument("--max-epochs", type=int, default=12)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            settings = TrainSettings(augment="dihedral", seed=seed)
            regular, regular_s = regular_on_test_fold(args.data, settings)
            options = AdvancedOptions(budget_minutes=args.budget_minutes, max_epochs=args.max_epochs)
            started = time.monotonic()
            result = train_advanced(args.data, Path(scratch) / f"advanced-{seed}", settings, options)
            advanced_s = time.monotonic() - started
            rows.append(
                {
                    "seed": seed,
                    "regular": {k: regular[k] for k in ("accuracy", "meanAveragePrecision")},
                    "advanced": {k: result.metrics[k] for k in ("accuracy", "meanAveragePrecision")},
                    "regularSeconds": round(regular_s, 1),
                    "advancedSeconds": round(advanced_s, 1),
                    "epochs": len(result.metrics["training"]["epochs"]) - 1,
                    "stoppedBy": result.metrics["training"]["stoppedBy"],
                    "testImages": result.metrics["images"],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        regular_model = train(args.data, Path(scratch) / "regular", TrainSettings(augment="dihedral")).iteration
        tiles = sorted(args.data.rglob("*.png"))[:40]
        baseline = inference_ms(regular_model.model_dir, tiles)
        tuned = inference_ms(Path(scratch) / f"advanced-{args.seeds[-1]}" / "iterations" / "1" / "model", tiles)
    summary = {
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, load {os.getloadavg()[0]:.2f}",
        "runs": rows,
        "regularAccuracyMean": statistics.mean(r["regular"]["accuracy"] for r in rows),
        "advancedAccuracyMean": statistics.mean(r["advanced"]["accuracy"] for r in rows),
        "inferenceMsRegular": round(baseline, 2),
        "inferenceMsAdvanced": round(tuned, 2),
        "inferenceRatio": round(tuned / baseline, 3),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

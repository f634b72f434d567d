"""Trainer benchmark: held-out quality and wall time on aerial-small, against a plain linear probe measured
in the same invocation.

Quality protocol: stratified 5-fold cross-validation repeated with several seeds (every tile is scored once per
repeat by a head that never saw it); mean +- std over the repeats. "rotated" scores every held-out tile in all
8 orientations (aerial tiles have no canonical "up"). Timing: `edgevision train` as a user runs it, cold (empty
feature cache) and warm (same project again), on all cores.

    .venv/bin/python bench/bench_train.py [--data ../shared/datasets/aerial-small/train] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgevision.train.dataset import load_dataset  # noqa: E402
from edgevision.train.features import AUGMENTATIONS, VIEWS, FeatureExtractor  # noqa: E402
from edgevision.train.head import fit_head  # noqa: E402
from edgevision.train.metrics import evaluate  # noqa: E402
from edgevision.train.settings import TrainSettings  # noqa: E402
from edgevision.train.trainer import class_weights, stratified_folds  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "aerial-small" / "train"

# name -> (resize, augment, balance); the first is the baseline.
CONFIGS = {
    "linear probe (baseline): resize 256 + crop 224, no augmentation": ("imagenet", "none", False),
    "linear probe, stretch to 224": ("stretch", "none", False),
    "trainer default: stretch, flip, balanced": ("stretch", "flip", True),
    "trainer --augment dihedral": ("stretch", "dihedral", True),
}


def timed_cli(*args: str) -> tuple[float, dict]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "edgevision", "train", *args, "--json", "--no-progress"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"edgevision train failed: {result.stderr.strip()}")
    return seconds, json.loads(result.stdout)


def cross_validated(features: np.ndarray, targets: np.ndarray, augment: str, balance: bool, seed: int, folds: int):
    """Held-out probabilities on the plain view and on all 8 orientations: ([N, T], [8, N, T])."""
    names = list(VIEWS)
    train_views = [names.index(v) for v in AUGMENTATIONS[augment]]
    l2 = TrainSettings().l2
    plain = np.zeros(targets.shape)
    rotated = np.zeros((len(names), *targets.shape))
    assignment = stratified_folds(targets, folds, seed)
    for fold in range(folds):
        test = assignment == fold
        x = features[~test][:, train_views]
        head = fit_head(
            x.reshape(-1, x.shape[-1]),
            np.repeat(targets[~test], len(train_views), axis=0),
            l2=l2,
            sample_weight=np.repeat(class_weights(targets[~test], balance), len(train_views)),
        )
        plain[test] = head.probabilities(features[test, 0])
        for v in range(len(names)):
            rotated[v, test] = head.probabilities(features[test, v])
    return plain, rotated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=5, help="seeds of the repeated k-fold")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: not found (the shared aerial-small set)")

    import onnxruntime

    print(
        f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python"
        f" {platform.python_version()}, onnxruntime {onnxruntime.__version__};"
        f" load average at start {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cold, info = timed_cli(str(args.data), "--project", str(work / "default"))
        warm, _ = timed_cli(str(args.data), "--project", str(work / "default"))
        cold_dihedral, _ = timed_cli(str(args.data), "--project", str(work / "dihedral"), "--augment", "dihedral")
        print(f"\nwall time of `edgevision train` on {info['dataset']['images']} images (process start to exit):")
        print(f"  default, cold cache: {cold:.1f} s   (iteration reports {info['trainingSeconds']} s inside)")
        print(f"  default, warm cache: {warm:.1f} s")
        print(f"  --augment dihedral, cold cache: {cold_dihedral:.1f} s")

        dataset = load_dataset(args.data)
        refs = [s.ref for s in dataset.samples]
        targets = dataset.targets()
        cache = work / "dihedral" / "cache" / "features"
        started = time.perf_counter()
        probe_features = FeatureExtractor("imagenet", cache, 0).extract(refs, ["id"])
        probe_seconds = time.perf_counter() - started
        started = time.perf_counter()
        head = fit_head(probe_features[:, 0], targets, l2=TrainSettings().l2)
        probe_seconds += time.perf_counter() - started
        del head
        print(f"  baseline linear probe in-process (decode + 1 view + fit, no evaluation): {probe_seconds:.1f} s")
        features = {
            "imagenet": np.concatenate(
                [probe_features, FeatureExtractor("imagenet", cache, 0).extract(refs, list(VIEWS)[1:])], axis=1
            ),
            "stretch": FeatureExtractor("stretch", cache, 0).extract(refs, list(VIEWS)),
        }

        print(
            f"\nheld-out quality, stratified {args.folds}-fold x {args.repeats} seeds,"
            f" {len(refs)} tiles ({', '.join(f'{k} {v}' for k, v in dataset.counts().items())}):"
        )
        print("| configuration | top-1 accuracy | mAP | top-1, tiles rotated/mirrored |")
        print("|---|---|---|---|")
        for name, (resize, augment, balance) in CONFIGS.items():
            accuracy, mean_ap, rotated_accuracy = [], [], []
            for seed in range(args.repeats):
                plain, rotated = cross_validated(features[resize], targets, augment, balance, seed, args.folds)
                metrics = evaluate(plain, targets, dataset.tags, multilabel=False)
                accuracy.append(metrics["accuracy"])
                mean_ap.append(metrics["meanAveragePrecision"])
                truth = targets.argmax(axis=1)
                rotated_accuracy.append(float(np.mean(rotated.argmax(axis=2) == truth[None, :])))
            print(f"| {name} | {_ms(accuracy)} | {_ms(mean_ap)} | {_ms(rotated_accuracy)} |")
    return 0


def _ms(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


if __name__ == "__main__":
    raise SystemExit(main())

"""int8 vs float: inference speed and top-1 on held-out aerial tiles, same machine, one run.

The 360 tiles of ../shared/datasets/aerial-small/train are split per class (seeded): two thirds train an
iteration with `edgevision train`'s defaults (library call), the last third is held out and never seen by
training or calibration. The iteration is exported as int8 the way `edgevision export --quantize int8` does
(calibrated on its training tiles). Both models then score the held-out tiles through the scoring core, and
their inference alone (`model.infer` on ready tensors, 1 intra-op thread, as the scorer runs) is timed in
interleaved slices from 1 and 2 threads. The bundled ImageNet MobileNetV2 (1000 tags) is timed the same way,
calibrated on half of the bundled photos.

    .venv/bin/python bench/bench_quantize.py [--seconds 10] [--rounds 10] [--seed 0] [--formats] [--json]

Targets (issue 16): int8 inference >= 1.8x faster than float; top-1 drop <= 1 point on held-out tiles.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_service import machine  # noqa: E402
from edgevision.demo import demo_photos  # noqa: E402
from edgevision.models import DEFAULT_MODEL_DIR, decode_image, load_model  # noqa: E402
from edgevision.train.flavours import quantized_model_dir  # noqa: E402
from edgevision.train.project import Project  # noqa: E402
from edgevision.train.quantize import quantize_model  # noqa: E402
from edgevision.train.settings import TrainSettings  # noqa: E402
from edgevision.train.trainer import train  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "aerial-small" / "train"


def split(data: Path, out: Path, seed: int) -> list[tuple[Path, str]]:
    """Symlink two thirds of each class into out/<class>/; return the held-out third as (path, class)."""
    rng = np.random.default_rng(seed)
    held_out = []
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        tiles = sorted(folder.glob("*.png"))
        order = rng.permutation(len(tiles))
        cut = len(tiles) * 2 // 3
        (out / folder.name).mkdir(parents=True)
        for i in order[:cut]:
            (out / folder.name / tiles[i].name).symlink_to(tiles[i])
        held_out += [(tiles[i], folder.name) for i in order[cut:]]
    return held_out


def top1(model, tiles: list[tuple[Path, str]]) -> tuple[list[str], np.ndarray]:
    """Top tag per tile and the probabilities in label order, through the scoring core."""
    rows = [model.infer(model.preprocess(decode_image(path.read_bytes()))[np.newaxis])[0] for path, _ in tiles]
    probabilities = np.stack(rows)
    return [model.labels[i] for i in probabilities.argmax(1)], probabilities


def share(a: list[str], b: list[str]) -> float:
    """The fraction of positions where two lists of tags agree."""
    return round(float(np.mean([x == y for x, y in zip(a, b, strict=True)])), 4)


class Timer:
    """Inference only: `model.infer` on ready tensors from `threads` threads, accumulated over slices."""

    def __init__(self, model, tensors: list[np.ndarray], threads: int) -> None:
        self.model, self.tensors, self.threads = model, tensors, threads
        self.count, self.elapsed = 0, 0.0
        self.latencies: list[float] = []
        for tensor in tensors[:10]:
            model.infer(tensor)

    def slice(self, seconds: float) -> None:
        deadline, lock = time.perf_counter() + seconds, threading.Lock()

        def worker(offset: int) -> None:
            i, local = offset, []
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                self.model.infer(self.tensors[i % len(self.tensors)])
                local.append(time.perf_counter() - started)
                i += 1
            with lock:
                self.latencies += local

        started = time.perf_counter()
        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(worker, range(self.threads)))
        self.elapsed += time.perf_counter() - started

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    def p50(self) -> float:
        return float(np.median(self.latencies)) * 1000


def measure(pairs: list[tuple[str, object, object, list[np.ndarray]]], seconds: float, rounds: int) -> list[dict]:
    """Interleaved slices of every (model, threads) row so that other load hits all rows alike."""
    timers = []
    for name, fp32, int8, tensors in pairs:
        for threads in (1, 2):
            timers.append((name, threads, Timer(fp32, tensors, threads), Timer(int8, tensors, threads)))
    for _ in range(rounds):
        for _, _, a, b in timers:
            a.slice(seconds / rounds)
            b.slice(seconds / rounds)
    return [
        {
            "model": name,
            "threads": threads,
            "float img/s": round(a.rate, 1),
            "int8 img/s": round(b.rate, 1),
            "float p50 ms": round(a.p50(), 2),
            "int8 p50 ms": round(b.p50(), 2),
            "speed-up": round(b.rate / a.rate, 2),
        }
        for name, threads, a, b in timers
    ]


def land_use(work: Path, seed: int) -> tuple[dict, object, object, list]:
    held_out = split(DATA, work / "data", seed)
    started = time.monotonic()
    result = train(work / "data", work / "project", TrainSettings(seed=seed), show_progress=False)
    trained = time.monotonic() - started
    started = time.monotonic()
    int8_dir = quantized_model_dir(Project.open(work / "project"), result.iteration.number)
    quantized = time.monotonic() - started
    fp32, int8 = load_model(result.iteration.model_dir, intra_op_threads=1), load_model(int8_dir, intra_op_threads=1)
    truth = [tag for _, tag in held_out]
    (top_a, probs_a), (top_b, probs_b) = top1(fp32, held_out), top1(int8, held_out)
    metrics = json.loads((result.iteration.dir / "metrics.json").read_text())
    quality = {
        "training tiles": len(result.dataset.samples),
        "held-out tiles": len(held_out),
        "float top-1": share(top_a, truth),
        "int8 top-1": share(top_b, truth),
        "top-1 agreement": share(top_a, top_b),
        "max probability difference": round(float(np.abs(probs_a - probs_b).max()), 4),
        "cross-validated accuracy float / int8": [metrics["accuracy"], metrics["quantized"]["int8"]["accuracy"]],
        "train s": round(trained, 1),
        "quantize + evaluate s": round(quantized, 1),
        "model MB float / int8": [round(m.path.stat().st_size / 1e6, 1) for m in (fp32, int8)],
    }
    tensors = [fp32.preprocess(decode_image(path.read_bytes()))[np.newaxis] for path, _ in held_out]
    quality["calibration"] = (sorted((work / "data").rglob("*.png")), held_out)
    return quality, fp32, int8, tensors


def formats(work: Path, source, calibration: list[Path], held_out: list, seconds: float, rounds: int) -> list[dict]:
    """The four int8 variants of the land-use model: held-out top-1, and inference only from 1 thread,
    interleaved with float."""
    tensors = [source.preprocess(decode_image(path.read_bytes()))[np.newaxis] for path, _ in held_out]
    variants = {}
    for fmt in ("QOperator", "QDQ"):
        for per_channel in (True, False):
            out = work / f"variant-{fmt}-{per_channel}"
            out.mkdir()
            shutil.copy(source.path.parent / "labels.txt", out)
            quantize_model(source.path, out / "model.onnx", calibration, quant_format=fmt, per_channel=per_channel)
            variants[f"{fmt}, per-channel {'on' if per_channel else 'off'}"] = load_model(out, intra_op_threads=1)
    float_timer = Timer(source, tensors, 1)
    timers = {name: Timer(model, tensors, 1) for name, model in variants.items()}
    for _ in range(rounds):
        float_timer.slice(seconds / rounds / 2)
        for timer in timers.values():
            timer.slice(seconds / rounds / 2)
    truth = [tag for _, tag in held_out]
    return [
        {
            "variant": name,
            "img/s": round(t.rate, 1),
            "speed-up": round(t.rate / float_timer.rate, 2),
            "top-1": share(top1(variants[name], held_out)[0], truth),
        }
        for name, t in timers.items()
    ]


def bundled(work: Path) -> tuple[object, object, list]:
    photos = demo_photos()
    out = work / "bundled-int8"
    out.mkdir()
    shutil.copy(DEFAULT_MODEL_DIR / "labels.txt", out)
    quantize_model(DEFAULT_MODEL_DIR / "model.onnx", out / "model.onnx", photos[::2])
    fp32, int8 = load_model(intra_op_threads=1), load_model(out, intra_op_threads=1)
    return fp32, int8, [fp32.preprocess(decode_image(p.read_bytes()))[np.newaxis] for p in photos]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per row and model")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved slices")
    parser.add_argument("--seed", type=int, default=0, help="split and training seed")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--formats", action="store_true", help="also time QOperator/QDQ x per-channel on/off")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        raise SystemExit(f"{DATA}: not found (the shared aerial-small set)")
    with tempfile.TemporaryDirectory(prefix="bench-quantize-") as scratch:
        work = Path(scratch)
        quality, fp32, int8, tensors = land_use(work, args.seed)
        calibration, held_out = quality.pop("calibration")
        variants = formats(work, fp32, calibration, held_out, args.seconds, args.rounds) if args.formats else []
        speed = measure(
            [("land use (3 tags)", fp32, int8, tensors), ("bundled ImageNet (1000 tags)", *bundled(work))],
            args.seconds,
            args.rounds,
        )
    print(f"machine: {machine()}")
    print()
    print("| held-out aerial tiles | value |\n|---|---|")
    for key, value in quality.items():
        print(f"| {key} | {value} |")
    print()
    print("| model | threads | float img/s | int8 img/s | speed-up | float p50 ms | int8 p50 ms |")
    print("|---|---|---|---|---|---|---|")
    for row in speed:
        print(
            f"| {row['model']} | {row['threads']} | {row['float img/s']} | {row['int8 img/s']} | {row['speed-up']}x"
            f" | {row['float p50 ms']} | {row['int8 p50 ms']} |"
        )
    if variants:
        print("\n| int8 variant (land use, 1 thread) | img/s | vs float | held-out top-1 |\n|---|---|---|---|")
        for row in variants:
            print(f"| {row['variant']} | {row['img/s']} | {row['speed-up']}x | {row['top-1']} |")
    print()
    drop = (quality["float top-1"] - quality["int8 top-1"]) * 100
    one = speed[0]["speed-up"]
    print(f"- {'PASS' if one >= 1.8 else 'MISS'}: int8 inference >= 1.8x float, land use, 1 thread ({one}x)")
    print(f"- {'PASS' if drop <= 1 else 'MISS'}: top-1 drop <= 1 point on held-out tiles ({drop:+.1f} points)")
    if args.json:
        print(json.dumps({"quality": quality, "speed": speed, "variants": variants}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

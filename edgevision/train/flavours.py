"""Export flavours of an iteration: int8, quantized once and kept beside the float model.

`quantized_model_dir(project, number)` builds `<iteration>/model-int8/` (model.onnx, labels.txt, manifest)
the first time, calibrated on the iteration's own training images, and records its held-out accuracy next to
the float model's in the iteration's metrics.json, iteration.json and report.html:

- regular iterations: the same stratified folds as training; each fold is scored by the head fitted on the
  other folds (float features, as the training run did) on top of the *int8* backbone, which is exactly how
  the int8 model scores (its head stays in float);
- advanced iterations: the held-out test fold, scored by the int8 model itself.
The calibration images are the training images (for a regular iteration that includes every fold: the
activation ranges, nothing else, saw the held-out images).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np

from edgevision.models import decode_image, load_model
from edgevision.train.dataset import Dataset, ImageList, load_dataset
from edgevision.train.errors import ProjectError
from edgevision.train.export import MANIFEST_FILE, MODEL_FILE, copy_model_dir
from edgevision.train.features import AUGMENTATIONS, FeatureExtractor
from edgevision.train.metrics import evaluate
from edgevision.train.project import ITERATION_FILE, Iteration, Project, read_json, write_json
from edgevision.train.quantize import FLAVOURS, quantize_model
from edgevision.train.report import write_report
from edgevision.train.settings import TrainSettings

FEATURES = "features"  # the backbone's pooled output, the head's input (features.py, export.build_onnx)
SUMMARY_KEYS = ("accuracy", "precision", "recall", "meanAveragePrecision", "threshold")


def flavour_dir(iteration: Iteration, flavour: str) -> Path:
    return iteration.dir / f"model-{flavour}"


def check_flavour(flavour: str) -> None:
    if flavour not in FLAVOURS:
        raise ProjectError(f"unknown quantization {flavour!r}: use one of {', '.join(FLAVOURS)}")


def quantized_model_dir(project: Project, number: int, flavour: str = "int8", data: ImageList | None = None) -> Path:
    """The iteration's `flavour` model folder, built (and evaluated) the first time it is asked for. `data`
    gives the training images when they are a list (the portal's) rather than the recorded folder or CSV."""
    check_flavour(flavour)
    iteration = project.iteration(number)
    out = flavour_dir(iteration, flavour)
    if (out / MODEL_FILE).is_file() and flavour in iteration.info.get("quantized", {}):
        return out
    dataset = _training_data(iteration, data)
    settings = TrainSettings.model_validate(iteration.info["settings"])
    advanced = iteration.info.get("trainingType") == "Advanced"
    folds = _folds(dataset, settings, advanced)
    calibration = [s.path for s, fold in zip(dataset.samples, folds, strict=True) if not advanced or fold > 1]
    staging = iteration.dir / f".model-{flavour}-staging"
    shutil.rmtree(staging, ignore_errors=True)
    copy_model_dir(iteration.model_dir, staging)
    try:
        description = quantize_model(staging / MODEL_FILE, staging / MODEL_FILE, calibration)
        description["sha256"] = _rewrite_manifest(staging, description)
        if advanced:
            test = folds == 0
            held_out = (_score(iteration.model_dir, dataset, test), _score(staging, dataset, test))
            targets = dataset.targets()[test]
        else:
            held_out = _held_out(staging, dataset, settings, folds, project)
            targets = dataset.targets()
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)  # recorded only once in place: a half-done run is built again next time
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _record(project, iteration, flavour, dataset, description, (*held_out, targets), settings)
    return out


def _training_data(iteration: Iteration, data: ImageList | None = None) -> Dataset:
    """The iteration's training set, re-read from where it was trained and checked to be the same images."""
    recorded = iteration.info["dataset"]
    settings = iteration.info["settings"]
    source = Path(recorded["source"])
    advice = "quantization calibrates on the iteration's own training images; restore them or train again"
    if data is None and not source.exists():
        raise ProjectError(f"{source}: the training data of iteration {iteration.number} is gone; {advice}")
    dataset = load_dataset(data or source, negative_tag=settings["negative_tag"], min_images=settings["min_images"])
    if dataset.fingerprint() != recorded["fingerprint"]:
        raise ProjectError(f"{source}: changed since iteration {iteration.number} was trained; {advice}")
    return dataset


def _folds(dataset: Dataset, settings: TrainSettings, advanced: bool) -> np.ndarray:
    from edgevision.train.trainer import stratified_folds

    # the fold assignment of the training run: 5 folds for advanced (0 test, 1 validation), settings.folds else
    return stratified_folds(dataset.targets(), 5 if advanced else settings.folds, settings.seed)


def _score(model_dir: Path, dataset: Dataset, rows: np.ndarray) -> np.ndarray:
    """Probabilities in label order of the scoring core for the selected samples."""
    model = load_model(model_dir, intra_op_threads=1)
    index = [model.labels.index(tag) for tag in dataset.tags]
    pixels = [model.preprocess(decode_image(dataset.samples[i].path.read_bytes())) for i in np.flatnonzero(rows)]
    return np.concatenate([model.infer(p[np.newaxis]) for p in pixels])[:, index]


def _held_out(
    model_dir: Path, dataset: Dataset, settings: TrainSettings, folds: np.ndarray, project: Project
) -> tuple[np.ndarray, np.ndarray]:
    """(float, int8) held-out probabilities: each fold's head, fitted on the other folds as in training, on
    the float and on the int8 backbone's features."""
    from edgevision.train.trainer import fit

    cache = Path(settings.cache).expanduser() if settings.cache else project.cache_dir
    extractor = FeatureExtractor(settings.resize, cache, settings.threads)
    float_features = extractor.extract([s.ref for s in dataset.samples], AUGMENTATIONS[settings.augment])
    int8_features = _int8_features(model_dir, dataset)
    targets = dataset.targets()
    floats, int8s = np.zeros(targets.shape, np.float64), np.zeros(targets.shape, np.float64)
    for fold in np.unique(folds):
        test = folds == fold
        head = fit(float_features[~test], targets[~test], settings, dataset.multilabel)
        floats[test] = head.probabilities(float_features[test, 0])
        int8s[test] = head.probabilities(int8_features[test])
    return floats, int8s


def _int8_features(model_dir: Path, dataset: Dataset) -> np.ndarray:
    """The int8 model's own backbone output (the float head's input) for every sample, plain view."""
    import onnx

    from edgevision.models import open_session

    graph = onnx.load(str(model_dir / MODEL_FILE))
    graph.graph.output.append(onnx.helper.make_empty_tensor_value_info(FEATURES))
    probe = model_dir / "features.onnx"
    onnx.save(graph, str(probe))
    try:
        session = open_session(probe, 1)
    finally:
        probe.unlink()
    model = load_model(model_dir, intra_op_threads=1)
    rows = []
    for sample in dataset.samples:
        pixels = model.preprocess(decode_image(sample.path.read_bytes()))[np.newaxis]
        (features,) = session.run([FEATURES], {model.input_name: pixels})
        rows.append(np.asarray(features, np.float32).reshape(-1))
    return np.stack(rows)


def _rewrite_manifest(model_dir: Path, description: dict) -> str:
    """The copied manifest describes the int8 file; returns its SHA-256."""
    manifest = read_json(model_dir / MANIFEST_FILE)
    manifest["ModelFileSHA256"] = hashlib.sha256((model_dir / MODEL_FILE).read_bytes()).hexdigest()
    manifest["Quantization"] = description
    write_json(model_dir / MANIFEST_FILE, manifest)
    return manifest["ModelFileSHA256"]


def _record(
    project: Project,
    iteration: Iteration,
    flavour: str,
    dataset: Dataset,
    description: dict,
    held_out: tuple[np.ndarray, np.ndarray, np.ndarray],
    settings: TrainSettings,
) -> None:
    """The flavour's held-out metrics next to the float ones: metrics.json, iteration.json, report.html."""
    metrics = read_json(iteration.dir / "metrics.json")
    floats, probabilities, targets = held_out
    scored = evaluate(probabilities, targets, dataset.tags, multilabel=dataset.multilabel, threshold=settings.threshold)
    entry = {
        **{key: scored[key] for key in SUMMARY_KEYS},
        "images": scored["images"],
        "tags": scored["tags"],
        "evaluation": metrics["evaluation"]["method"],
        # the same images through the float model, recomputed now: the pairs compare like with like
        "floatAccuracy": evaluate(
            floats, targets, dataset.tags, multilabel=dataset.multilabel, threshold=settings.threshold
        )["accuracy"],
        "top1AgreementWithFloat": float((floats.argmax(1) == probabilities.argmax(1)).mean()),
        "maxProbabilityDifference": float(np.abs(floats - probabilities).max()),
        "model": {"dir": f"model-{flavour}", **description},
    }
    metrics.setdefault("quantized", {})[flavour] = entry
    info = dict(iteration.info)
    info.setdefault("quantized", {})[flavour] = {key: scored[key] for key in SUMMARY_KEYS}
    write_json(iteration.dir / "metrics.json", metrics)
    write_json(iteration.dir / ITERATION_FILE, info)
    write_report(iteration.dir / "report.html", project, info, metrics, dataset)

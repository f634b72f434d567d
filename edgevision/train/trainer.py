"""One training run: read and check the data, extract (cached) backbone features, evaluate with stratified
k-fold, fit the final head on everything, export, write the iteration. Figures in the report are held-out:
every image is scored by a head trained on the other folds, with the same settings as the exported model.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgevision import __version__
from edgevision.train.dataset import Dataset, ImageList, load_dataset
from edgevision.train.errors import DatasetError, ExportError
from edgevision.train.export import write_model_dir
from edgevision.train.features import AUGMENTATIONS, FeatureExtractor
from edgevision.train.head import LinearHead, fit_head
from edgevision.train.metrics import evaluate, predicted_tags
from edgevision.train.project import ITERATION_FILE, Iteration, Project, now, write_json
from edgevision.train.report import write_report
from edgevision.train.settings import TrainSettings

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    project: Project
    iteration: Iteration
    metrics: dict
    dataset: Dataset
    seconds: float
    # Held-out probabilities (label order) by image content hash: what any threshold's figures come from.
    held_out: dict[str, list[float]] = field(default_factory=dict)


@contextmanager
def progress_bar(
    description: str, total: int | None, enabled: bool | None = None, unit: str = "img"
) -> Iterator[Callable[[int], None]]:
    """A tqdm bar on stderr when it is a terminal (quiet in logs and CI); yields `advance(n)`."""
    from tqdm import tqdm

    show = sys.stderr.isatty() if enabled is None else enabled
    with tqdm(total=total, desc=description, unit=unit, disable=not show, leave=False) as bar:
        yield bar.update


def stratified_folds(targets: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number per row, spreading each stratum evenly. The stratum is the row's rarest tag
    (multi-label) or its tag (multi-class); negatives form their own stratum."""
    counts = targets.sum(axis=0)
    rarity = np.where(targets > 0, counts[None, :], np.inf)
    strata = np.where(targets.any(axis=1), rarity.argmin(axis=1), -1)
    rng = np.random.default_rng(seed)
    assignment = np.zeros(len(targets), np.int64)
    offset = 0
    for stratum in np.unique(strata):
        rows = rng.permutation(np.flatnonzero(strata == stratum))
        assignment[rows] = (np.arange(len(rows)) + offset) % folds
        offset += len(rows)  # the next stratum starts where this one stopped, so folds stay even in size
    return assignment


def class_weights(targets: np.ndarray, balance: bool) -> np.ndarray:
    """Per-row loss weights: each tag (and the negatives) weighs the same in total when balancing."""
    if not balance:
        return np.ones(len(targets))
    counts = targets.sum(axis=0)
    negatives = max(int((~targets.any(axis=1)).sum()), 1)
    inverse = np.where(targets > 0, 1.0 / np.maximum(counts, 1)[None, :], 0.0)
    tagged = targets.sum(axis=1)
    return np.where(tagged > 0, inverse.sum(axis=1) / np.maximum(tagged, 1), 1.0 / negatives)


def fit(features: np.ndarray, targets: np.ndarray, settings: TrainSettings, multilabel: bool) -> LinearHead:
    """Fit on every view of every image: features [N, V, D]."""
    views = features.shape[1]
    return fit_head(
        features.reshape(-1, features.shape[-1]),
        np.repeat(targets, views, axis=0),
        multilabel=multilabel,
        l2=settings.l2,
        sample_weight=np.repeat(class_weights(targets, settings.balance), views),
        max_iter=settings.max_iter,
    )


def cross_validate(
    features: np.ndarray, targets: np.ndarray, settings: TrainSettings, multilabel: bool, advance=None
) -> np.ndarray:
    """Held-out probabilities for every row (scored on the plain view, as the exported model scores)."""
    assignment = stratified_folds(targets, settings.folds, settings.seed)
    out = np.zeros(targets.shape, np.float64)
    for fold in range(settings.folds):
        test = assignment == fold
        if test.any():
            head = fit(features[~test], targets[~test], settings, multilabel)
            out[test] = head.probabilities(features[test, 0])
        if advance:
            advance(1)
    return out


def train(
    data: str | Path | ImageList,
    project_dir: str | Path,
    settings: TrainSettings | None = None,
    *,
    name: str | None = None,
    show_progress: bool | None = None,
    iteration_id: str | None = None,
) -> TrainResult:
    settings = settings or TrainSettings()
    started = time.monotonic()
    project, extractor, dataset = open_training(data, project_dir, settings, name=name, show_progress=show_progress)
    views = AUGMENTATIONS[settings.augment]
    with progress_bar(f"features x{len(views)} views", len(dataset.samples), show_progress) as advance:
        features = extractor.extract([s.ref for s in dataset.samples], views, progress=advance)
    targets = dataset.targets()
    multilabel = dataset.multilabel
    with progress_bar("training heads", settings.folds + 1, show_progress, unit="fit") as advance:
        held_out = cross_validate(features, targets, settings, multilabel, advance)
        head = fit(features, targets, settings, multilabel)
        advance(1)
    metrics = evaluate(held_out, targets, dataset.tags, multilabel=multilabel, threshold=settings.threshold)
    metrics["evaluation"] = _protocol(settings)
    metrics["misclassified"] = misclassified(dataset, held_out, settings.threshold)
    metrics["skipped"] = [{"path": s.path, "reason": s.reason} for s in dataset.skipped]
    metrics["duplicates"] = [
        {"paths": list(d.paths), "tags": [list(t) for t in d.tags], "conflict": d.conflict} for d in dataset.duplicates
    ]
    iteration = write_iteration(
        project,
        dataset,
        settings,
        metrics,
        extractor,
        started,
        write_model=lambda out, tags, metadata, manifest: write_model_dir(out, head, tags, metadata, manifest),
        verify=lambda model_dir: _verify_export(model_dir, dataset, head, features),
        iteration_id=iteration_id,
    )
    return TrainResult(
        project, iteration, metrics, dataset, time.monotonic() - started, held_out_by_image(dataset, held_out)
    )


def open_training(
    data: str | Path | ImageList,
    project_dir: str | Path,
    settings: TrainSettings,
    *,
    name: str | None,
    show_progress: bool | None,
) -> tuple[Project, FeatureExtractor, Dataset]:
    """The project, the feature extractor and the checked dataset every kind of training starts from."""
    source = data if isinstance(data, ImageList) else Path(data)
    if isinstance(source, Path) and not source.exists():
        raise DatasetError(f"{source}: no such folder or CSV file")
    multilabel = source.multilabel if isinstance(source, ImageList) else source.is_file()
    # The project folder is checked before any work but written only once the data passes its checks.
    project = Project.open_or_create(project_dir, multilabel=multilabel, name=name, create=False)
    views = AUGMENTATIONS[settings.augment]
    cache = Path(settings.cache).expanduser() if settings.cache else project.cache_dir
    extractor = FeatureExtractor(settings.resize, cache, settings.threads)
    with progress_bar("reading images", _listing_size(source), show_progress) as advance:
        dataset = load_dataset(
            source,
            negative_tag=settings.negative_tag,
            min_images=settings.min_images,
            progress=advance,
            known=lambda sha256: extractor.cached(sha256, views),
        )
    project.save()
    return project, extractor, dataset


def _listing_size(source: Path | ImageList) -> int | None:
    if isinstance(source, ImageList):
        return len(source.entries)
    if source.is_dir():
        return sum(1 for folder in source.iterdir() if folder.is_dir() for p in folder.rglob("*") if p.is_file())
    return None


def _protocol(settings: TrainSettings) -> dict:
    return {
        "method": "stratified k-fold cross-validation",
        "folds": settings.folds,
        "seed": settings.seed,
        "description": f"every image scored by a head trained on the other {settings.folds - 1} of"
        f" {settings.folds} stratified folds (seed {settings.seed}); the exported head is trained on all images",
    }


def held_out_by_image(dataset: Dataset, probabilities: np.ndarray) -> dict[str, list[float]]:
    return {s.sha256: [float(p) for p in row] for s, row in zip(dataset.samples, probabilities, strict=True)}


def misclassified(dataset: Dataset, probabilities: np.ndarray, threshold: float) -> list[dict]:
    """The images the held-out scores get wrong at `threshold`, most confident first."""
    wrong = []
    for sample, probs in zip(dataset.samples, probabilities, strict=True):
        predicted = predicted_tags(probs, dataset.tags, multilabel=dataset.multilabel, threshold=threshold)
        if sorted(predicted) != sorted(sample.tags):
            wrong.append(
                {
                    "path": str(sample.path),
                    "tags": list(sample.tags),
                    "predicted": predicted,
                    "probabilities": {tag: round(float(p), 4) for tag, p in zip(dataset.tags, probs, strict=True)},
                }
            )
    return sorted(wrong, key=lambda w: -max(w["probabilities"].values()))


ModelWriter = Callable[[Path, list[str], dict[str, str], dict], dict]


def write_iteration(
    project: Project,
    dataset: Dataset,
    settings: TrainSettings,
    metrics: dict,
    extractor: FeatureExtractor,
    started: float,
    *,
    write_model: ModelWriter,
    verify: Callable[[Path], None],
    training_type: str = "Regular",
    extra: dict | None = None,
    iteration_id: str | None = None,
) -> Iteration:
    """Write the model (`write_model(out, tags, metadata, manifest)` -> manifest), check it with `verify`,
    then the metrics, report and iteration.json; the iteration appears whole or not at all."""
    with project.new_iteration_dir() as (number, staging):
        iteration_id = iteration_id or str(uuid.uuid4())
        tag_ids = project.tag_ids(dataset.tags)
        model_name = f"{project.name}-iteration-{number}"
        metadata = {
            "CustomVision.Metadata.Version": "1.1",
            "CustomVision.Metadata.ProjectId": project.id,
            "CustomVision.Metadata.IterationId": iteration_id,
            "CustomVision.Postprocess.Method": (
                "ClassificationMultiLabel" if dataset.multilabel else "ClassificationMultiClass"
            ),
            **extractor.metadata,
            "EdgeVision.ModelName": model_name,
            "EdgeVision.TagIds": json.dumps(tag_ids),
            "EdgeVision.Source": f"edgevision-train {__version__}; backbone {extractor.backbone_source}",
        }
        manifest = write_model(
            staging / "model",
            dataset.tags,
            metadata,
            {
                "DomainType": "Classification",
                "Platform": "ONNX",
                "ExporterVersion": f"edgevision-train {__version__}",
                "ProjectId": project.id,
                "IterationId": iteration_id,
                "Iteration": number,
                "ModelName": model_name,
                "ClassificationType": metrics["classificationType"],
                "Tags": [{"id": i, "name": n} for i, n in zip(tag_ids, dataset.tags, strict=True)],
                "Preprocess": {k: v for k, v in metadata.items() if ".Preprocess." in k or k.startswith("Image.")},
            },
        )
        verify(staging / "model")
        summary = {
            key: metrics[key] for key in ("accuracy", "precision", "recall", "meanAveragePrecision", "threshold")
        }
        info = {
            "id": iteration_id,
            "number": number,
            "projectId": project.id,
            "created": now(),
            "classificationType": metrics["classificationType"],
            "trainingType": training_type,
            "trainingSeconds": round(time.monotonic() - started, 2),
            "dataset": {
                "source": str(dataset.source.resolve()),
                "fingerprint": dataset.fingerprint(),
                "images": len(dataset.samples),
                "perTag": dataset.counts(),
                "skipped": len(dataset.skipped),
                "duplicates": len(dataset.duplicates),
            },
            "settings": settings.model_dump(mode="json"),
            "evaluation": metrics["evaluation"],
            "metrics": summary,
            "tags": [{"id": i, "name": n} for i, n in zip(tag_ids, dataset.tags, strict=True)],
            "model": {"name": model_name, "sha256": manifest["ModelFileSHA256"], "dir": "model"},
            **(extra or {}),
        }
        write_json(staging / "metrics.json", metrics)
        write_json(staging / ITERATION_FILE, info)
        write_report(staging / "report.html", project, info, metrics, dataset)
        return project.commit_iteration(number, staging)


def _verify_export(model_dir: Path, dataset: Dataset, head: LinearHead, features: np.ndarray) -> None:
    """The exported file, loaded by the scoring core, must score as the head did (same pixels, same maths)."""
    from edgevision.models import decode_image, load_model

    model = load_model(model_dir)
    picks = list(range(min(4, len(dataset.samples))))
    images = [decode_image(dataset.samples[i].path.read_bytes()) for i in picks]
    scored = np.array(
        [
            [p.probability for p in sorted(row, key=lambda p: model.labels.index(p.tag_name))]
            for row in model.predict_many(images)
        ]
    )
    expected = head.probabilities(features[picks, 0])
    if not np.allclose(scored, expected, atol=1e-3):
        raise ExportError(
            f"{model_dir}: the exported model does not reproduce the trained head"
            f" (largest difference {np.abs(scored - expected).max():.4f}); please report this"
        )

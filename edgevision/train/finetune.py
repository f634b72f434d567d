"""Advanced training: fine-tune the last blocks of MobileNetV2 on the CPU, then export it as a regular iteration.

Protocol (no image both steers and scores): stratified folds split the data into a training part (3/5), a
validation part (1/5) that only picks the epoch to keep (early stopping), and a test part (1/5) that only
scores the kept model; the iteration's metrics are the test part's. The network starts from the ImageNet
weights and, for its last layer, from the linear head fitted on frozen features of the training part, so the
first epoch starts where regular training ends.

Why the last blocks: blocks 14-18 (the 160- and 320-channel inverted residuals and the final 1x1 conv) hold
most of the weights that are specific to ImageNet's classes, but run at 7 x 7, so their backward pass is
cheap on a CPU; the earlier blocks compute generic edges and textures, and unfreezing them costs a full
backward pass for little gain on a few hundred images. BatchNorm statistics stay frozen: batches of 16 on
a few hundred images would estimate them worse than ImageNet did.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevision.models import decode_image
from edgevision.train.dataset import Dataset, ImageList
from edgevision.train.errors import DatasetError, ExportError, TrainError
from edgevision.train.export import OUTPUT_NAME, save_model_dir, stamp_metadata
from edgevision.train.features import AUGMENTATIONS
from edgevision.train.metrics import evaluate
from edgevision.train.settings import TrainSettings
from edgevision.train.trainer import (
    TrainResult,
    class_weights,
    fit,
    held_out_by_image,
    misclassified,
    open_training,
    progress_bar,
    stratified_folds,
    write_iteration,
)

log = logging.getLogger(__name__)

FIRST_TRAINED_BLOCK = 14  # features[14:] are trained, features[:14] stay as ImageNet left them
EXPORT_TOLERANCE = 1e-3  # largest probability difference allowed between torch and the exported ONNX


class TrainingCancelled(TrainError):
    """The run was cancelled; no iteration was written."""


@dataclass
class AdvancedOptions:
    """How long and how hard to fine-tune."""

    budget_minutes: float = 10.0  # the whole run, reading images to export; the best epoch so far is kept
    max_epochs: int = 30
    patience: int = 5  # epochs without a better validation loss before stopping
    batch_size: int = 16
    learning_rate: float = 1e-4  # 3e-4 spiked the validation loss and never beat the start on aerial tiles
    cancel: threading.Event | None = None
    on_epoch: Callable[[dict], None] | None = None  # {"epoch", "validationAccuracy", "validationLoss", ...}


def train_advanced(
    data: str | Path | ImageList,
    project_dir: str | Path,
    settings: TrainSettings | None = None,
    options: AdvancedOptions | None = None,
    *,
    name: str | None = None,
    show_progress: bool | None = None,
    iteration_id: str | None = None,
) -> TrainResult:
    """Fine-tune and write an iteration marked `trainingType: Advanced`; raises TrainingCancelled if cancelled."""
    import torch

    settings = settings or TrainSettings()
    options = options or AdvancedOptions()
    started = time.monotonic()
    deadline = started + options.budget_minutes * 60
    torch.manual_seed(settings.seed)
    project, extractor, dataset = open_training(data, project_dir, settings, name=name, show_progress=show_progress)
    views = AUGMENTATIONS[settings.augment]
    targets = dataset.targets()
    folds = stratified_folds(targets, 5, settings.seed)
    test, validation = folds == 0, folds == 1
    training = ~(test | validation)
    if min(test.sum(), validation.sum()) < len(dataset.tags):
        raise DatasetError("advanced training needs at least 5 images per tag (a fifth each to validate and test)")

    pixels = np.stack([extractor.preprocess(decode_image(s.path.read_bytes())) for s in dataset.samples])
    features = extractor.extract([dataset.samples[i].ref for i in np.flatnonzero(training)], views)
    head = fit(features, targets[training], settings, dataset.multilabel)
    net = _network(head, dataset.multilabel)
    tuner = _Tuner(
        net, targets, settings, options, dataset.multilabel, deadline, top_down=settings.augment == "dihedral"
    )
    history = tuner.run(pixels, training, validation, show_progress)

    probabilities = tuner.probabilities(pixels[test])
    metrics = evaluate(
        probabilities, targets[test], dataset.tags, multilabel=dataset.multilabel, threshold=settings.threshold
    )
    metrics["evaluation"] = {
        "method": "held-out test fold",
        "folds": 5,
        "seed": settings.seed,
        "description": f"{int(test.sum())} images of one stratified fold (seed {settings.seed}) scored by the kept"
        f" model; {int(validation.sum())} others only chose the epoch; it trained on {int(training.sum())}",
    }
    metrics["misclassified"] = misclassified(_subset(dataset, test), probabilities, settings.threshold)
    metrics["skipped"] = [{"path": s.path, "reason": s.reason} for s in dataset.skipped]
    metrics["duplicates"] = []
    metrics["training"] = {"epochs": history, "stoppedBy": tuner.stopped_by, "firstTrainedBlock": FIRST_TRAINED_BLOCK}
    if options.cancel is not None and options.cancel.is_set():
        raise TrainingCancelled("training cancelled: no iteration written")

    check: dict = {}

    def write(out: Path, tags: list[str], metadata: dict[str, str], manifest: dict) -> dict:
        return save_model_dir(out, stamp_metadata(_to_onnx(net), metadata), tags, manifest)

    def verify(model_dir: Path) -> None:
        check.update(_verify_export(model_dir, tuner, pixels, dataset))
        metrics["exportCheck"] = check

    iteration = write_iteration(
        project,
        dataset,
        settings,
        metrics,
        extractor,
        started,
        write_model=write,
        verify=verify,
        training_type="Advanced",
        extra={"advanced": {"epochs": len(history), "stoppedBy": tuner.stopped_by, "exportCheck": check}},
        iteration_id=iteration_id,
    )
    tested = _subset(dataset, test)
    return TrainResult(
        project, iteration, metrics, dataset, time.monotonic() - started, held_out_by_image(tested, probabilities)
    )


def _subset(dataset: Dataset, rows: np.ndarray) -> Dataset:
    from dataclasses import replace

    return replace(dataset, samples=[s for s, keep in zip(dataset.samples, rows, strict=True) if keep])


def _network(head, multilabel: bool):
    """ImageNet MobileNetV2 with a new last layer set to the linear head's solution."""
    import torch
    from torch import nn

    from edgevision.train.mobilenet import imagenet_mobilenet

    net = imagenet_mobilenet()
    weight = np.asarray(head.weight, np.float32)  # [1280, tags]
    layer = nn.Linear(weight.shape[0], weight.shape[1])
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight.T.copy()))
        layer.bias.copy_(torch.from_numpy(np.asarray(head.bias, np.float32)))
    net.classifier = nn.Sequential(nn.Dropout(0.2), layer)
    for index, block in enumerate(net.features):
        block.requires_grad_(index >= FIRST_TRAINED_BLOCK)
    net.multilabel = multilabel
    return net


class _Tuner:
    """The epoch loop: augmented batches, weighted loss, cosine learning rate, early stopping, the budget."""

    def __init__(self, net, targets, settings, options, multilabel, deadline, *, top_down: bool) -> None:
        import torch

        self.net = net
        self.targets = torch.from_numpy(targets.astype(np.float32))
        self.weights = torch.from_numpy(class_weights(targets, settings.balance).astype(np.float32))
        self.options = options
        self.multilabel = multilabel
        self.deadline = deadline
        self.top_down = top_down
        self.stopped_by = "epochs"
        self.generator = torch.Generator().manual_seed(settings.seed)
        trained = [p for p in net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trained, lr=options.learning_rate, weight_decay=1e-4)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=options.max_epochs)

    def run(self, pixels: np.ndarray, training: np.ndarray, validation: np.ndarray, show_progress) -> list[dict]:
        import copy

        history: list[dict] = []
        best_loss, best_state, stale = float("inf"), copy.deepcopy(self.net.state_dict()), 0
        base = self._validate(pixels, validation)
        history.append({"epoch": 0, **base})
        best_loss = base["validationLoss"]
        with progress_bar("fine-tuning", self.options.max_epochs, show_progress, unit="epoch") as advance:
            for epoch in range(1, self.options.max_epochs + 1):
                if not self._epoch(pixels, np.flatnonzero(training)):
                    break
                record = {"epoch": epoch, **self._validate(pixels, validation)}
                history.append(record)
                advance(1)
                log.info(
                    "epoch %d: held-out accuracy %.3f, loss %.4f",
                    epoch,
                    record["validationAccuracy"],
                    record["validationLoss"],
                )
                if self.options.on_epoch:
                    self.options.on_epoch(record)
                if record["validationLoss"] < best_loss - 1e-4:
                    best_loss, best_state, stale = record["validationLoss"], copy.deepcopy(self.net.state_dict()), 0
                else:
                    stale += 1
                    if stale >= self.options.patience:
                        self.stopped_by = "early stopping"
                        break
        self.net.load_state_dict(best_state)
        for record in history:
            record["kept"] = record["validationLoss"] == best_loss
        return history

    def _stop_now(self) -> bool:
        if self.options.cancel is not None and self.options.cancel.is_set():
            self.stopped_by = "cancelled"
            return True
        # Leave a tenth of the budget (at least 20 s) to score, export and check the model.
        reserve = max(20.0, 0.1 * self.options.budget_minutes * 60)
        if time.monotonic() > self.deadline - reserve:
            self.stopped_by = "budget"
            return True
        return False

    def _epoch(self, pixels: np.ndarray, rows: np.ndarray) -> bool:
        """One pass over the training rows; False when the budget or a cancel stopped it."""
        import torch

        self.net.eval()  # BatchNorm statistics frozen (see the module's docstring)
        self.net.classifier.train()  # dropout on the last layer
        order = rows[torch.randperm(len(rows), generator=self.generator).numpy()]
        for start in range(0, len(order), self.options.batch_size):
            if self._stop_now():
                return False
            batch = order[start : start + self.options.batch_size]
            inputs = self._augment(torch.from_numpy(pixels[batch]))
            loss = self._loss(self.net(inputs), batch)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.schedule.step()
        return True

    def _loss(self, logits, rows: np.ndarray):
        import torch
        from torch.nn import functional

        targets, weights = self.targets[rows], self.weights[rows]
        if self.multilabel:
            per_row = functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(dim=1)
        else:
            per_row = functional.cross_entropy(logits, targets.argmax(dim=1), reduction="none")
        return (per_row * weights).sum() / torch.clamp(weights.sum(), min=1e-8)

    def _augment(self, batch):
        """Random resized crops, flips (and quarter turns for top-down imagery), brightness and contrast."""
        import torch
        from torch.nn import functional

        out = torch.empty_like(batch)
        size = batch.shape[-1]
        g = self.generator
        for i, image in enumerate(batch):
            scale = float(torch.empty(1).uniform_(0.6, 1.0, generator=g))
            side = max(8, round(size * scale**0.5))
            top, left = (int(torch.randint(0, size - side + 1, (1,), generator=g)) for _ in range(2))
            crop = image[:, top : top + side, left : left + side].unsqueeze(0)
            image = functional.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)[0]
            if torch.rand(1, generator=g) < 0.5:
                image = image.flip(-1)
            if self.top_down:
                image = torch.rot90(image, int(torch.randint(0, 4, (1,), generator=g)), dims=(1, 2))
            contrast = float(torch.empty(1).uniform_(0.8, 1.2, generator=g))
            brightness = float(torch.empty(1).uniform_(-0.2, 0.2, generator=g))
            out[i] = image * contrast + brightness
        return out

    def _validate(self, pixels: np.ndarray, rows: np.ndarray) -> dict:
        import torch

        picked = np.flatnonzero(rows)
        logits = self.logits(pixels[picked])
        with torch.no_grad():
            loss = float(self._loss(logits, picked))
        targets = self.targets[picked].numpy()
        if self.multilabel:
            accuracy = float(((torch.sigmoid(logits).numpy() >= 0.5) == (targets > 0)).all(axis=1).mean())
        else:
            accuracy = float((logits.numpy().argmax(axis=1) == targets.argmax(axis=1)).mean())
        return {"validationAccuracy": round(accuracy, 4), "validationLoss": round(loss, 5)}

    def logits(self, pixels: np.ndarray):
        import torch

        self.net.eval()
        with torch.no_grad():
            parts = [self.net(torch.from_numpy(pixels[i : i + 32])) for i in range(0, len(pixels), 32)]
        return torch.cat(parts) if parts else torch.zeros((0, self.targets.shape[1]))

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        logits = self.logits(pixels)
        return (torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)).numpy()


def _to_onnx(net):
    """TorchScript export (as the bundled model's build), input `data`, output `model_output`, dynamic batch."""
    import io
    import warnings

    import onnx
    import torch

    class Probabilities(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            logits = self.net(x)
            return torch.sigmoid(logits) if net.multilabel else torch.softmax(logits, dim=1)

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Probabilities().eval(),
            (torch.zeros(1, 3, 224, 224),),
            buffer,
            dynamo=False,
            opset_version=17,
            do_constant_folding=True,
            input_names=["data"],
            output_names=[OUTPUT_NAME],
            dynamic_axes={"data": {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    model = onnx.load_from_string(buffer.getvalue())
    model.producer_name = "edgevision-train"
    return model


def _verify_export(model_dir: Path, tuner: _Tuner, pixels: np.ndarray, dataset: Dataset) -> dict:
    """The exported file, through the scoring core, must score real images as torch does."""
    from edgevision.models import load_model

    model = load_model(model_dir)
    picks = list(range(min(8, len(dataset.samples))))
    images = [decode_image(dataset.samples[i].path.read_bytes()) for i in picks]
    scored = np.array(
        [
            [p.probability for p in sorted(row, key=lambda p: model.labels.index(p.tag_name))]
            for row in model.predict_many(images)
        ]
    )
    difference = float(np.abs(scored - tuner.probabilities(pixels[picks])).max())
    if difference > EXPORT_TOLERANCE:
        raise ExportError(
            f"{model_dir}: the exported model differs from the fine-tuned network by {difference:.4f}"
            f" (tolerance {EXPORT_TOLERANCE}); please report this"
        )
    return {"images": len(picks), "maxProbabilityDifference": round(difference, 6), "tolerance": EXPORT_TOLERANCE}

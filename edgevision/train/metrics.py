"""Evaluation like Custom Vision's: precision and recall per tag at a probability threshold, average precision
per tag and its mean, a confusion matrix and precision-recall curves, from held-out predictions.

Multi-class: an image's prediction is its most probable tag when that probability reaches the threshold,
otherwise "(none)"; the confusion matrix has one row per true tag and one column per predicted tag plus
"(none)", and precision/recall per tag are read off it. Multi-label: each tag is judged on its own (probability
>= threshold), with a 2 x 2 matrix per tag. A precision or recall whose denominator is 0 is reported as 0.
"""

from __future__ import annotations

import numpy as np

NONE_COLUMN = "(none)"


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the precision-recall step curve: sum over thresholds of (recall gain) x precision.
    Tied scores form one threshold, so the result does not depend on the order of ties."""
    positives = np.asarray(positives, bool)
    if not positives.any():
        return 0.0
    precision, recall, _ = pr_curve(scores, positives)
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))


def pr_curve(scores: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, threshold) at every distinct score, highest threshold first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    scores = np.asarray(scores)[order]
    hits = np.asarray(positives, bool)[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_pos = np.cumsum(hits)[last_of_tie]
    predicted = last_of_tie + 1
    return true_pos / predicted, true_pos / max(int(hits.sum()), 1), scores[last_of_tie]


def evaluate(
    probabilities: np.ndarray, targets: np.ndarray, tags: list[str], *, multilabel: bool, threshold: float = 0.5
) -> dict:
    """Metrics as a JSON-friendly dict (the body of metrics.json, without per-image details)."""
    probabilities = np.asarray(probabilities, np.float64)
    targets = np.asarray(targets) > 0.5
    per_tag = []
    for t, tag in enumerate(tags):
        precision, recall, thresholds = pr_curve(probabilities[:, t], targets[:, t])
        per_tag.append(
            {
                "tag": tag,
                "images": int(targets[:, t].sum()),
                "averagePrecision": average_precision(probabilities[:, t], targets[:, t]),
                "prCurve": {
                    "precision": _rounded(precision),
                    "recall": _rounded(recall),
                    "threshold": _rounded(thresholds),
                },
            }
        )
    result = {
        "threshold": threshold,
        "images": len(targets),
        "classificationType": "Multilabel" if multilabel else "Multiclass",
        "meanAveragePrecision": float(np.mean([t["averagePrecision"] for t in per_tag])),
    }
    if multilabel:
        result.update(_multilabel(probabilities, targets, tags, threshold, per_tag))
    else:
        result.update(_multiclass(probabilities, targets, tags, threshold, per_tag))
    result["tags"] = per_tag
    return result


def _multiclass(probs: np.ndarray, targets: np.ndarray, tags: list[str], threshold: float, per_tag: list) -> dict:
    truth = targets.argmax(axis=1)
    top = probs.argmax(axis=1)
    predicted = np.where(probs.max(axis=1) >= threshold, top, len(tags))  # len(tags) = the "(none)" column
    matrix = np.zeros((len(tags), len(tags) + 1), np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    for t, entry in enumerate(per_tag):
        entry["precision"] = _ratio(matrix[t, t], matrix[:, t].sum())
        entry["recall"] = _ratio(matrix[t, t], matrix[t, :].sum())
    correct = int(np.trace(matrix[:, : len(tags)]))
    return {
        "accuracy": float(np.mean(top == truth)),  # top-1, whatever the threshold
        "precision": _ratio(correct, matrix[:, : len(tags)].sum()),
        "recall": _ratio(correct, matrix.sum()),
        "confusionMatrix": {"rows": tags, "columns": [*tags, NONE_COLUMN], "counts": matrix.tolist()},
    }


def _multilabel(probs: np.ndarray, targets: np.ndarray, tags: list[str], threshold: float, per_tag: list) -> dict:
    predicted = probs >= threshold
    totals = np.zeros(3, np.int64)  # tp, fp, fn over all tags
    matrices = {}
    for t, entry in enumerate(per_tag):
        tp = int((predicted[:, t] & targets[:, t]).sum())
        fp = int((predicted[:, t] & ~targets[:, t]).sum())
        fn = int((~predicted[:, t] & targets[:, t]).sum())
        tn = int((~predicted[:, t] & ~targets[:, t]).sum())
        entry["precision"] = _ratio(tp, tp + fp)
        entry["recall"] = _ratio(tp, tp + fn)
        matrices[entry["tag"]] = [[tn, fp], [fn, tp]]
        totals += (tp, fp, fn)
    tp, fp, fn = (int(v) for v in totals)
    return {
        "accuracy": float(np.mean((predicted == targets).all(axis=1))),  # exact match of the tag set
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "confusionMatrix": {"perTag": matrices, "layout": "[[TN, FP], [FN, TP]]"},
    }


def predicted_tags(probs: np.ndarray, tags: list[str], *, multilabel: bool, threshold: float) -> list[str]:
    """What the model says about one image at the threshold, as the metrics count it."""
    if multilabel:
        return [tag for tag, p in zip(tags, probs, strict=True) if p >= threshold]
    top = int(np.argmax(probs))
    return [tags[top]] if probs[top] >= threshold else []


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in values]

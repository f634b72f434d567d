"""The head's optimiser and class balancing, on synthetic features: it must reach the optimum of the
regularised loss it claims to minimise."""

from __future__ import annotations

import numpy as np
import pytest

from edgevision.train.head import fit_head
from edgevision.train.trainer import class_weights, stratified_folds


def blobs(rng: np.random.Generator, per_class: tuple[int, ...], dims: int = 12) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(0, 2.0, (len(per_class), dims))
    x = np.concatenate([rng.normal(c, 1.0, (n, dims)) + 5.0 for c, n in zip(centres, per_class, strict=True)])
    y = np.repeat(np.arange(len(per_class)), per_class)
    return x, y


def objective(x, targets, weight, bias, l2, multilabel, sample_weight) -> float:
    """The loss written independently: on standardised features, with the head's folding undone."""
    std = x.std(axis=0) + 1e-6
    w = weight * std[:, None]  # weights in standardised space
    z = x @ weight + bias
    if multilabel:
        rows = (np.logaddexp(0, z) - targets * z).sum(axis=1)
    else:
        rows = np.logaddexp.reduce(z, axis=1) - (targets * z).sum(axis=1)
    p = sample_weight / sample_weight.sum()
    return float(p @ rows) + 0.5 * l2 * float((w * w).sum())


@pytest.mark.parametrize("multilabel", [False, True])
def test_fit_reaches_the_regularised_optimum(multilabel: bool) -> None:
    rng = np.random.default_rng(7)
    x, y = blobs(rng, (40, 25, 30))
    targets = np.eye(3)[y]
    if multilabel:
        targets[:10, 1] = 1.0  # some images carry two tags
        targets[-5:] = 0.0  # negatives
    weights = class_weights(targets, balance=True)
    l2 = 0.05
    head = fit_head(x, targets, multilabel=multilabel, l2=l2, sample_weight=weights, max_iter=500)
    w64, b64 = head.weight.astype(np.float64), head.bias.astype(np.float64)
    best = objective(x, targets, w64, b64, l2, multilabel, weights)
    for _ in range(20):  # no small step in any direction does better
        dw = rng.normal(0, 1e-3, w64.shape)
        db = rng.normal(0, 1e-3, b64.shape)
        assert objective(x, targets, w64 + dw, b64 + db, l2, multilabel, weights) >= best - 1e-6
    probabilities = head.probabilities(x)
    if multilabel:
        assert ((probabilities >= 0.5) == (targets > 0)).mean() > 0.9
    else:
        assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        assert (probabilities.argmax(axis=1) == y).mean() > 0.95


def test_balancing_gives_every_tag_the_same_weight() -> None:
    targets = np.eye(3)[np.repeat([0, 1, 2], [10, 50, 20])]
    weights = class_weights(targets, balance=True)
    per_tag = [weights[targets[:, t] > 0].sum() for t in range(3)]
    assert per_tag == pytest.approx([1.0, 1.0, 1.0])
    assert np.all(class_weights(targets, balance=False) == 1.0)


def test_balancing_moves_the_decision_towards_the_rare_tag() -> None:
    rng = np.random.default_rng(3)
    x, y = blobs(rng, (150, 8), dims=4)
    x[y == 1] = x[y == 0][:8] + rng.normal(0, 1.5, (8, 4))  # rare tag overlapping the common one
    targets = np.eye(2)[y]
    plain = fit_head(x, targets, l2=0.01)
    balanced = fit_head(x, targets, l2=0.01, sample_weight=class_weights(targets, balance=True))
    assert balanced.probabilities(x)[:, 1].mean() > plain.probabilities(x)[:, 1].mean()


def test_folds_are_stratified_and_even() -> None:
    targets = np.eye(3)[np.repeat([0, 1, 2], [50, 10, 7])]
    folds = stratified_folds(targets, 5, seed=1)
    for t, n in enumerate((50, 10, 7)):
        counts = np.bincount(folds[targets[:, t] > 0], minlength=5)
        assert counts.max() - counts.min() <= 1 and counts.sum() == n
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 1
    assert np.array_equal(folds, stratified_folds(targets, 5, seed=1))
    assert not np.array_equal(folds, stratified_folds(targets, 5, seed=2))

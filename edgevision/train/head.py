"""The classification head: an L2-regularised linear layer on standardised backbone features, trained
full-batch with L-BFGS in numpy (the loss is convex and smooth, so this converges to the one optimum,
deterministically). Softmax cross-entropy for multi-class, independent sigmoids for multi-label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class LinearHead:
    """logits = features @ weight + bias, standardisation folded in (the exported graph is one MatMul + Add)."""

    weight: np.ndarray  # [features, tags]
    bias: np.ndarray  # [tags]
    multilabel: bool = False

    def logits(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weight + self.bias

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return activate(self.logits(features), self.multilabel)


def activate(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    if multilabel:
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def fit_head(
    features: np.ndarray,
    targets: np.ndarray,
    *,
    multilabel: bool = False,
    l2: float = 1e-3,
    sample_weight: np.ndarray | None = None,
    max_iter: int = 300,
    progress: Callable[[int], None] | None = None,
) -> LinearHead:
    """Fit on features [N, D] and targets [N, T] (one-hot rows, or 0/1 rows for multi-label; all-zero rows
    are negatives). `sample_weight` balances classes; `l2` multiplies the mean squared weight."""
    features = np.asarray(features, np.float64)
    targets = np.asarray(targets, np.float64)
    weights = np.ones(len(features)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    weights = weights / weights.sum()
    mean = features.mean(axis=0)
    std = features.std(axis=0) + 1e-6
    x = (features - mean) / std
    dims, tags = x.shape[1], targets.shape[1]

    def loss_and_grad(params: np.ndarray) -> tuple[float, np.ndarray]:
        w = params[: dims * tags].reshape(dims, tags)
        b = params[dims * tags :]
        z = x @ w + b
        if multilabel:
            # log(1 + e^z) - t z, stably
            loss_rows = (np.logaddexp(0.0, z) - targets * z).sum(axis=1)
            dz = activate(z, True) - targets
        else:
            log_norm = np.logaddexp.reduce(z, axis=1)
            loss_rows = log_norm - (targets * z).sum(axis=1)
            dz = np.exp(z - log_norm[:, None]) - targets
        loss = float(weights @ loss_rows) + 0.5 * l2 * float((w * w).sum())
        dz *= weights[:, None]
        grad_w = x.T @ dz + l2 * w
        return loss, np.concatenate([grad_w.ravel(), dz.sum(axis=0)])

    params = lbfgs(loss_and_grad, np.zeros(dims * tags + tags), max_iter=max_iter, progress=progress)
    w = params[: dims * tags].reshape(dims, tags)
    b = params[dims * tags :]
    # Fold the standardisation into the layer: ((f - mean) / std) @ w + b == f @ (w / std) + (b - (mean/std) @ w)
    weight = w / std[:, None]
    bias = b - (mean / std) @ w
    return LinearHead(weight.astype(np.float32), bias.astype(np.float32), multilabel)


def lbfgs(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    *,
    max_iter: int = 300,
    memory: int = 10,
    tol: float = 1e-6,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Minimise a smooth function with L-BFGS and a backtracking (Armijo) line search."""
    x = x0.copy()
    f, g = fun(x)
    s_list: list[np.ndarray] = []
    y_list: list[np.ndarray] = []
    for iteration in range(max_iter):
        if np.abs(g).max() < tol:
            break
        direction = -_two_loop(g, s_list, y_list)
        slope = float(g @ direction)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            s_list.clear()
            y_list.clear()
            direction, slope = -g, -float(g @ g)
        step = 1.0 if s_list else min(1.0, 1.0 / max(np.abs(g).sum(), 1e-12))
        while True:
            x_new = x + step * direction
            f_new, g_new = fun(x_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-12:
                break
            step *= 0.5
        s, y = x_new - x, g_new - g
        if float(s @ y) > 1e-12:
            s_list.append(s)
            y_list.append(y)
            if len(s_list) > memory:
                s_list.pop(0)
                y_list.pop(0)
        converged = abs(f - f_new) <= tol * max(1.0, abs(f))
        x, f, g = x_new, f_new, g_new
        if progress:
            progress(iteration + 1)
        if converged:
            break
    return x


def _two_loop(g: np.ndarray, s_list: list[np.ndarray], y_list: list[np.ndarray]) -> np.ndarray:
    q = g.copy()
    alphas = []
    for s, y in zip(reversed(s_list), reversed(y_list), strict=True):
        rho = 1.0 / float(y @ s)
        alpha = rho * float(s @ q)
        q -= alpha * y
        alphas.append((rho, alpha, s, y))
    if s_list:
        q *= float(s_list[-1] @ y_list[-1]) / float(y_list[-1] @ y_list[-1])
    for rho, alpha, s, y in reversed(alphas):
        beta = rho * float(y @ q)
        q += (alpha - beta) * s
    return q

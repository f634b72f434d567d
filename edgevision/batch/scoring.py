"""Bytes of many files in, one probability vector or one error per file out, through the one scoring core.

Decoding and pre-processing are `edgevision.models.decode_image` and `ImageModel.preprocess`, exactly what the
scoring service runs per request; only inference is batched (`ImageModel.infer` on a stacked array), which
changes results by float rounding only (well under 1e-5).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgevision.models import ImageDecodeError, ImageModel, decode_image

# Output columns, in order. `probabilities` is a map<string, float> tag -> probability.
COLUMNS = (
    "path",
    "folder",
    "top_tag",
    "top_probability",
    "probabilities",
    "model_id",
    "project_id",
    "iteration_id",
    "error",
)
ROOT_FOLDER = "."  # the `folder` of files directly in the scored folder


@dataclass(frozen=True)
class ModelInfo:
    """What every output row repeats about the model; computed once on the driver / parent process."""

    model_id: str
    project_id: str
    iteration_id: str
    labels: tuple[str, ...]

    @classmethod
    def of(cls, model: ImageModel) -> ModelInfo:
        return cls(model.model_id, model.project_id, model.iteration_id, tuple(model.labels))


@dataclass
class Scores:
    """Results for a list of files, index-aligned: a probability row (label order) or an error message."""

    probabilities: np.ndarray  # float32 [N, tags]; rows of failed files are NaN
    errors: list[str | None]

    def top(self, labels: Sequence[str]) -> tuple[list[str | None], np.ndarray]:
        """Top tag and its probability per file (None / NaN for failed files). Ties: first in label order,
        as the service's stable sort by probability."""
        tags: list[str | None] = [None] * len(self.errors)
        best = np.full(len(self.errors), np.nan, np.float32)
        ok = np.array([e is None for e in self.errors], bool)
        if ok.any():
            index = self.probabilities[ok].argmax(axis=1)
            best[ok] = self.probabilities[ok][np.arange(len(index)), index]
            for row, i in zip(np.flatnonzero(ok), index, strict=True):
                tags[row] = labels[i]
        return tags, best


def score_contents(model: ImageModel, contents: Sequence[bytes | ImageDecodeError], batch_size: int = 32) -> Scores:
    """Decode, pre-process and score every blob (an ImageDecodeError stands for a file that could not be read).
    Never raises for a bad file: its row gets an error message instead."""
    probabilities = np.full((len(contents), len(model.labels)), np.nan, np.float32)
    errors: list[str | None] = [None] * len(contents)
    for start in range(0, len(contents), batch_size):
        pixels, rows = [], []
        for row in range(start, min(start + batch_size, len(contents))):
            try:
                pixels.append(model.preprocess(decode_image(_bytes(contents[row]))))
                rows.append(row)
            except ImageDecodeError as exc:
                errors[row] = f"{exc.code}: {exc.message}"
            except Exception as exc:  # one odd file (e.g. a pre-processing edge case) must not stop the job
                errors[row] = f"ImageNotScorable: {type(exc).__name__}: {exc}"
        if pixels:
            probabilities[rows] = model.infer(np.stack(pixels))
    return Scores(probabilities, errors)


def read_file(path: str) -> bytes | ImageDecodeError:
    """The file's bytes, or the error to report for it when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        return ImageDecodeError("FileNotReadable", f"the file cannot be read: {exc.strerror or exc}")


def _bytes(content: bytes | ImageDecodeError | None) -> bytes:
    if isinstance(content, ImageDecodeError):
        raise content
    if content is None:
        raise ImageDecodeError("FileNotReadable", "the file could not be read")
    return bytes(content)


# -- paths -----------------------------------------------------------------------------------------------------


def display_path(path: str) -> str:
    """Spark's `file:` URIs as plain local paths, so both engines write the same `path` column."""
    if path.startswith("file://"):
        path = path[len("file://") :]
    elif path.startswith("file:"):
        path = path[len("file:") :]
    return path


def relative_folder(path: str, root: str) -> str:
    """The file's folder relative to the scored root ('.' for files directly in it); falls back to the name of
    the parent folder when the file is not under `root` (e.g. a cluster resolved the path differently)."""
    path, root = display_path(path), display_path(root).rstrip("/") or "/"
    sep = "/" if "://" in path or os.sep == "/" else os.sep
    parent = posixpath.dirname(path) if sep == "/" else os.path.dirname(path)
    prefix = root if root.endswith(sep) else root + sep
    if parent == root:
        return ROOT_FOLDER
    if parent.startswith(prefix):
        return parent[len(prefix) :].replace(os.sep, "/")
    return posixpath.basename(parent.replace(os.sep, "/")) or ROOT_FOLDER

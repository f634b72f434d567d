"""Which model answers a request: the default model, or an iteration published under PUBLISHED_DIR/<name>/.

Published iterations load lazily on their first request and stay cached; a folder whose model file changes
(published again under the same name) is loaded again. An unknown name falls back to the default model, as
the export container ignores the iteration name.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

from edgevision.classifier.errors import ApiError
from edgevision.models import ImageModel, ModelLoadError, load_model

log = logging.getLogger(__name__)

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class ModelRegistry:
    """The default model plus the published iterations loaded so far. Thread-safe."""

    def __init__(self, default: ImageModel, published_dir: Path | None = None, *, intra_op_threads: int = 0):
        self.default = default
        self.published_dir = published_dir
        self._intra_op_threads = intra_op_threads
        self._cache: dict[str, tuple[tuple[int, int], ImageModel]] = {}
        self._lock = threading.Lock()

    def get(self, name: str | None) -> ImageModel:
        """The model published as `name`, else the default model."""
        model_file = self._published_file(name)
        if model_file is None:
            return self.default
        assert name is not None
        stat = model_file.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:  # loads are rare: one lock keeps two requests from loading the same model twice
            cached = self._cache.get(name)
            if cached is None or cached[0] != stamp:
                cached = (stamp, self._load(name, model_file.parent))
                self._cache[name] = cached
            return cached[1]

    def swap(self, model: ImageModel) -> ImageModel:
        """Serve `model` by default from the next request on; returns the model it replaces. Requests already
        scoring keep the reference they took, so none fails or mixes two models."""
        with self._lock:
            previous, self.default = self.default, model
        return previous

    def loaded(self) -> dict[str, str]:
        """Published name -> model id of the iterations loaded so far."""
        with self._lock:
            return {name: model.model_id for name, (_, model) in sorted(self._cache.items())}

    def _published_file(self, name: str | None) -> Path | None:
        if not name or self.published_dir is None or not SAFE_NAME.fullmatch(name):
            return None
        model_file = self.published_dir / name / "model.onnx"
        return model_file if model_file.is_file() else None

    def _load(self, name: str, folder: Path) -> ImageModel:
        try:
            model = load_model(folder, intra_op_threads=self._intra_op_threads)
        except ModelLoadError as exc:
            log.error("published iteration %s cannot be served: %s", name, exc)
            raise ApiError(503, "ErrorPredictionModelNotFound", f"published iteration {name!r}: {exc}") from None
        log.info("loaded published iteration %s (%s)", name, model.model_id)
        return model

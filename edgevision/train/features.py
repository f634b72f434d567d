"""Backbone features for training: the scoring core's own decoding and pre-processing, then the pooled
features of `backbone.onnx`, one vector per (image, view), cached on disk by image content hash.

Views are geometric transforms of the pre-processed network input (the same pixels the exported model sees),
so augmentation never changes colours or resampling: rotations by 90 degrees and mirror images.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevision.files import write_atomic
from edgevision.models import DEFAULT_MODEL_DIR, Preprocessing, decode_image, open_session

BACKBONE_FILE = DEFAULT_MODEL_DIR / "backbone.onnx"
FEATURE_SIZE = 1280

# View name -> (quarter turns counter-clockwise, mirrored left-right first).
VIEWS: dict[str, tuple[int, bool]] = {
    "id": (0, False),
    "r90": (1, False),
    "r180": (2, False),
    "r270": (3, False),
    "m": (0, True),
    "m90": (1, True),
    "m180": (2, True),
    "m270": (3, True),
}
AUGMENTATIONS: dict[str, tuple[str, ...]] = {
    "none": ("id",),
    "flip": ("id", "m"),
    "dihedral": tuple(VIEWS),  # every rotation and mirror image: for top-down imagery (aerial, microscopy)
}

# Pre-processing modes -> the Custom Vision metadata the exported model carries (and that features use).
RESIZE_MODES: dict[str, dict[str, str]] = {
    # Straight to the network size: keeps the whole picture (aerial tiles lose nothing), distorts aspect.
    "stretch": {
        "CustomVision.Preprocess.ResizeMethod": "Stretch",
        "CustomVision.Preprocess.TargetWidth": "224.0",
        "CustomVision.Preprocess.TargetHeight": "224.0",
        "CustomVision.Preprocess.CropMethod": "None",
    },
    # Shorter side to the network size, then the centre square: square pictures are kept whole.
    "crop": {
        "CustomVision.Preprocess.ResizeMethod": "ByShorterSide",
        "CustomVision.Preprocess.TargetWidth": "224.0",
        "CustomVision.Preprocess.TargetHeight": "224.0",
        "CustomVision.Preprocess.CropMethod": "OneCropCenter",
    },
    # What the backbone was trained with (ImageNet): shorter side 256, centre 224 (drops a quarter of a tile).
    "imagenet": {
        "CustomVision.Preprocess.ResizeMethod": "ByShorterSide",
        "CustomVision.Preprocess.TargetWidth": "256.0",
        "CustomVision.Preprocess.TargetHeight": "256.0",
        "CustomVision.Preprocess.CropMethod": "OneCropCenter",
    },
}


def preprocess_metadata(resize: str, base: dict[str, str]) -> dict[str, str]:
    """The backbone's pre-processing metadata with the resize/crop mode `resize` applied."""
    meta = {k: v for k, v in base.items() if k.startswith(("CustomVision.Preprocess.", "Image."))}
    meta.update(RESIZE_MODES[resize])
    return meta


def apply_view(chw: np.ndarray, view: str) -> np.ndarray:
    turns, mirrored = VIEWS[view]
    if mirrored:
        chw = chw[:, :, ::-1]
    if turns:
        chw = np.rot90(chw, turns, axes=(1, 2))
    return np.ascontiguousarray(chw)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ImageRef:
    """One readable image: where it is and its content hash (the cache key)."""

    path: Path
    sha256: str


class FeatureCache:
    """float32 feature vectors on disk: `<root>/<key>/<hash[:2]>/<hash>-<view>.npy`, written atomically so an
    interrupted run keeps what it finished. `key` names the backbone and the pre-processing."""

    def __init__(self, root: Path, key: str) -> None:
        self.dir = root / key

    def _file(self, sha256: str, view: str) -> Path:
        return self.dir / sha256[:2] / f"{sha256}-{view}.npy"

    def has(self, sha256: str, view: str) -> bool:
        return self._file(sha256, view).is_file()

    def get(self, sha256: str, view: str) -> np.ndarray | None:
        path = self._file(sha256, view)
        try:
            vector = np.load(path)
        except (OSError, ValueError):
            return None
        return vector if vector.shape == (FEATURE_SIZE,) else None

    def put(self, sha256: str, view: str, vector: np.ndarray) -> None:
        path = self._file(sha256, view)
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(vector, np.float32))
        write_atomic(path, buffer.getvalue())


def fill_from_cache(
    cache: FeatureCache | None, images: Sequence[ImageRef], views: Sequence[str], out: np.ndarray
) -> dict[int, list[int]]:
    """Copy cached vectors into `out` [image, view]; returns image index -> view indexes still to compute, in
    image order. One pass: linear in images x views (a training set has tens of thousands of images)."""
    missing: dict[int, list[int]] = {}
    for i, ref in enumerate(images):
        for j, view in enumerate(views):
            cached = cache.get(ref.sha256, view) if cache else None
            if cached is None:
                missing.setdefault(i, []).append(j)
            else:
                out[i, j] = cached
    return missing


class FeatureExtractor:
    """Pooled backbone features of images under one pre-processing mode, with an optional disk cache."""

    def __init__(self, resize: str = "stretch", cache_dir: Path | None = None, threads: int = 0) -> None:
        self.resize = resize
        self._session = open_session(BACKBONE_FILE, threads)
        # the open session already parsed the file: its metadata costs nothing more (no second load via onnx)
        self.backbone_metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        self.metadata = preprocess_metadata(resize, self.backbone_metadata)
        self.preprocess = Preprocessing.from_metadata(self.metadata, 224, 224)
        digest = hashlib.sha256(BACKBONE_FILE.read_bytes()).hexdigest()[:12]
        self.cache = FeatureCache(cache_dir, f"mobilenetv2-{digest}-{resize}") if cache_dir else None

    @property
    def backbone_source(self) -> str:
        """The backbone file and where it came from (its `EdgeVision.Source` metadata), for the model's own."""
        source = self.backbone_metadata.get("EdgeVision.Source", "")
        return f"{BACKBONE_FILE.name} ({source})" if source else BACKBONE_FILE.name

    def cached(self, sha256: str, views: Sequence[str]) -> bool:
        return self.cache is not None and all(self.cache.has(sha256, view) for view in views)

    def run(self, batch: np.ndarray) -> np.ndarray:
        (features,) = self._session.run(["features"], {"data": batch.astype(np.float32, copy=False)})
        return features

    def extract(
        self,
        images: Sequence[ImageRef],
        views: Sequence[str],
        *,
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Features [len(images), len(views), 1280]; `progress(n)` after every n images done."""
        out = np.zeros((len(images), len(views), FEATURE_SIZE), np.float32)
        missing = fill_from_cache(self.cache, images, views, out)
        if progress:
            progress(len(images) - len(missing))
        tensors: list[np.ndarray] = []
        slots: list[tuple[int, int]] = []

        def flush() -> None:
            if not tensors:
                return
            features = self.run(np.stack(tensors))
            for (i, j), vector in zip(slots, features, strict=True):
                out[i, j] = vector
                if self.cache:
                    self.cache.put(images[i].sha256, views[j], vector)
            tensors.clear()
            slots.clear()

        for i in missing:
            chw = self.preprocess(decode_image(images[i].path.read_bytes()))
            for j in missing[i]:
                tensors.append(apply_view(chw, views[j]))
                slots.append((i, j))
            if len(tensors) >= batch_size:
                flush()
            if progress:
                progress(1)
        flush()
        return out

"""One small class that reads a classification model's own metadata and predicts, for every model we accept:

- our models and newer Custom Vision exports: one probability vector indexed by labels.txt, pre-processing
  described by `CustomVision.Preprocess.*` / `Image.*` metadata;
- classic compact Custom Vision exports: BGR 0..255 input resized to the network size, outputs
  `classLabel` + `loss` (a sequence of label -> probability maps);
- multi-label exports of either kind (independent probabilities; `CustomVision.Postprocess.Method`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edgevision import contracts
from edgevision.errors import EdgeVisionError
from edgevision.models.images import DEFAULT_MAX_PIXELS, decode_image

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"
MIN_OPSET = 7  # the oldest default-domain opset onnxruntime loads
MODEL_FILE = "model.onnx"
LABELS_FILE = "labels.txt"


class ModelLoadError(EdgeVisionError):
    """The model cannot be served; the message names the file and the reason on one line."""


@dataclass(frozen=True)
class Prediction:
    tag_name: str
    probability: float
    tag_id: str = ""

    def contract(self) -> contracts.Prediction:
        """The Custom Vision `predictions[]` entry."""
        return contracts.Prediction(tagName=self.tag_name, probability=self.probability, tagId=self.tag_id)

    def to_json(self) -> dict:
        return contracts.encode(self.contract())


@dataclass(frozen=True)
class Preprocessing:
    """How a model wants its pixels, read from its metadata."""

    input_width: int
    input_height: int
    bgr: bool = False
    scale_to_unit: bool = False  # divide by 255 (Normalized_0_1) or keep 0..255
    resize: str = "Stretch"  # "ByShorterSide" or "Stretch" (straight to the input size)
    target_width: int = 0
    target_height: int = 0
    crop: bool = False
    max_dimension: int = 0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @classmethod
    def from_metadata(cls, meta: dict[str, str], width: int, height: int) -> Preprocessing:
        resize = meta.get("CustomVision.Preprocess.ResizeMethod", "Stretch") or "Stretch"
        if resize not in {"ByShorterSide", "Stretch", "None"}:
            raise ValueError(f"unsupported CustomVision.Preprocess.ResizeMethod {resize!r}")
        crop = meta.get("CustomVision.Preprocess.CropMethod", "")
        if crop not in {"", "None", "OneCropCenter"}:
            raise ValueError(f"unsupported CustomVision.Preprocess.CropMethod {crop!r}")
        pixel_range = meta.get("Image.NominalPixelRange", "NominalRange_0_255")
        if pixel_range not in {"NominalRange_0_255", "Normalized_0_1"}:
            raise ValueError(f"unsupported Image.NominalPixelRange {pixel_range!r}")
        return cls(
            input_width=width,
            input_height=height,
            bgr=meta.get("Image.BitmapPixelFormat", "Bgr8") == "Bgr8",
            scale_to_unit=pixel_range == "Normalized_0_1",
            resize="ByShorterSide" if resize == "ByShorterSide" else "Stretch",
            target_width=_int(meta.get("CustomVision.Preprocess.TargetWidth")) or width,
            target_height=_int(meta.get("CustomVision.Preprocess.TargetHeight")) or height,
            crop=crop == "OneCropCenter",
            max_dimension=_int(meta.get("CustomVision.Preprocess.MaxDimension")),
            mean=_triple(meta.get("CustomVision.Preprocess.NormalizeMean"), 0.0),
            std=_triple(meta.get("CustomVision.Preprocess.NormalizeStd"), 1.0),
        )

    def __call__(self, image: Image.Image) -> np.ndarray:
        """An RGB PIL image -> float32 CHW array ready for the network."""
        if self.max_dimension and max(image.size) > self.max_dimension:
            image = _scale(image, self.max_dimension / max(image.size))
        if self.resize == "ByShorterSide":
            image = self._shorter_side_then_crop(image)
        elif self.crop:
            image = _center_crop(image, self.input_width, self.input_height)
        if image.size != (self.input_width, self.input_height):
            image = image.resize((self.input_width, self.input_height), Image.BILINEAR)
        return self.normalize(np.asarray(image, dtype=np.uint8))

    def normalize(self, rgb: np.ndarray) -> np.ndarray:
        """HWC uint8 RGB -> float32 CHW in the model's channel order, range, mean and std, in two passes
        (scale into a new array, then add in place) instead of one per operation."""
        scale, offset = self._affine
        chw = rgb.transpose(2, 0, 1)  # a view: no copy
        if self.bgr:
            chw = chw[::-1]
        pixels = np.multiply(chw, scale, dtype=np.float32, order="C")
        pixels += offset
        return pixels

    @property
    def _affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(value / unit - mean) / std as value * scale + offset, per channel, in the model's channel order."""
        unit = 255.0 if self.scale_to_unit else 1.0
        mean, std = np.asarray(self.mean, np.float64), np.asarray(self.std, np.float64)
        scale, offset = 1.0 / (unit * std), -mean / std
        if self.bgr:  # mean and std are given per RGB channel, as the pixels are before the swap
            scale, offset = scale[::-1], offset[::-1]
        return scale.astype(np.float32)[:, None, None], offset.astype(np.float32)[:, None, None]

    def _shorter_side_then_crop(self, image: Image.Image) -> Image.Image:
        """Resize the shorter side to the target, then centre-crop to the input size, in one resampling of
        only the cropped region: the same pixels as scaling the whole picture first, without ever building
        it (a long thin image would otherwise scale to gigabytes)."""
        factor = min(self.target_width, self.target_height) / min(image.size)
        scaled_w, scaled_h = max(1, round(image.width * factor)), max(1, round(image.height * factor))
        out_w, out_h = min(self.input_width, scaled_w), min(self.input_height, scaled_h)
        left, top = (scaled_w - out_w) // 2, (scaled_h - out_h) // 2
        fx, fy = image.width / scaled_w, image.height / scaled_h
        box = (left * fx, top * fy, (left + out_w) * fx, (top + out_h) * fy)
        return image.resize((out_w, out_h), Image.BILINEAR, box=box)


class ImageModel:
    """A loaded classification model. Thread-safe: one onnxruntime session serves concurrent callers."""

    def __init__(self, path: str | Path | None = None, *, intra_op_threads: int = 0) -> None:
        self.path = _model_file(Path(path) if path else DEFAULT_MODEL_DIR)
        session = open_session(self.path, intra_op_threads)
        self._session = session
        self.metadata: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelLoadError(f"{self.path}: expected one NCHW image input, found {len(inputs)} inputs")
        self._input = inputs[0]
        self._input_type = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        height, width = (_int(d) for d in inputs[0].shape[2:])
        if not height or not width:
            raise ModelLoadError(f"{self.path}: the input has no fixed height and width")
        self._batchable = not isinstance(inputs[0].shape[0], int) or inputs[0].shape[0] != 1
        try:
            self.preprocess = Preprocessing.from_metadata(self.metadata, width, height)
        except ValueError as exc:
            raise ModelLoadError(f"{self.path}: {exc}") from None
        self._outputs = {o.name: o for o in session.get_outputs()}
        self.classic = "loss" in self._outputs and self._outputs["loss"].type.startswith("seq(map")
        self.labels = self._read_labels()
        self.tag_ids = self._tag_ids()
        self.multilabel = self._is_multilabel()
        self.project_id = self.metadata.get("CustomVision.Metadata.ProjectId", "")
        self.iteration_id = self.metadata.get("CustomVision.Metadata.IterationId", "")
        self.name = self.metadata.get("EdgeVision.ModelName") or self.path.parent.name
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self._local = threading.local()

    @property
    def input_name(self) -> str:
        """The network's one image input, for tools that feed it directly (quantization calibration)."""
        return self._input.name

    @property
    def model_id(self) -> str:
        """A short id that changes whenever the model file changes."""
        return f"{self.name}@{self.sha256[:12]}"

    def describe(self) -> dict:
        return {
            "modelId": self.model_id,
            "name": self.name,
            "path": str(self.path),
            "project": self.project_id,
            "iteration": self.iteration_id,
            "tags": len(self.labels),
            "multilabel": self.multilabel,
            "format": "classic" if self.classic else "vector",
            "inputSize": [self.preprocess.input_width, self.preprocess.input_height],
        }

    # -- prediction ------------------------------------------------------------------------------------

    def predict(self, image_bytes: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Prediction]:
        """Decode, pre-process and score one image; predictions sorted by probability, descending."""
        return self.predict_image(decode_image(image_bytes, max_pixels=max_pixels))

    def predict_image(self, image: Image.Image) -> list[Prediction]:
        return self.predictions(self.infer(self.preprocess(image)[np.newaxis])[0])

    def predict_many(self, images: Sequence[Image.Image]) -> list[list[Prediction]]:
        if not images:
            return []
        batch = np.stack([self.preprocess(image) for image in images])
        return [self.predictions(row) for row in self.infer(batch)]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Pre-processed NCHW batch -> probabilities [N, len(labels)] in label order."""
        batch = batch.astype(self._input_type, copy=False)
        if not self._batchable and len(batch) > 1:
            return np.concatenate([self.infer(batch[i : i + 1]) for i in range(len(batch))])
        if self.classic:
            (maps,) = self._session.run(["loss"], {self._input.name: batch})
            return np.array([[m.get(label, 0.0) for label in self.labels] for m in maps], np.float32)
        (scores,) = self._session.run([self._score_output], {self._input.name: batch})
        return self._as_probabilities(np.asarray(scores, np.float32).reshape(len(batch), -1))

    def predictions(self, probabilities: Iterable[float]) -> list[Prediction]:
        ranked = sorted(
            (
                Prediction(label, float(p), tag_id)
                for label, tag_id, p in zip(self.labels, self.tag_ids, probabilities, strict=True)
            ),
            key=lambda p: p.probability,
            reverse=True,
        )
        return ranked

    # -- loading helpers -----------------------------------------------------------------------------

    @property
    def _score_output(self) -> str:
        return next(iter(self._outputs))

    def _read_labels(self) -> list[str]:
        labels_file = self.path.parent / LABELS_FILE
        labels = _read_lines(labels_file) if labels_file.is_file() else []
        if self.classic:
            return labels or self._classic_labels()
        if not labels:
            raise ModelLoadError(f"{self.path}: {LABELS_FILE} is missing beside the model")
        (output,) = [self._outputs[self._score_output]]
        size = output.shape[-1] if output.shape else None
        if isinstance(size, int) and size != len(labels):
            raise ModelLoadError(
                f"{self.path}: the model scores {size} tags but {labels_file.name} lists {len(labels)}"
            )
        return labels

    def _classic_labels(self) -> list[str]:
        # No labels.txt: ask the model once; its map keys are the tags.
        dummy = np.zeros((1, 3, self.preprocess.input_height, self.preprocess.input_width), self._input_type)
        (maps,) = self._session.run(["loss"], {self._input.name: dummy})
        return list(maps[0].keys())

    def _is_multilabel(self) -> bool:
        method = self.metadata.get("CustomVision.Postprocess.Method")
        if method or not self.classic:
            return method == "ClassificationMultiLabel"
        # Classic exports do not say; a softmax sums to one on any input, independent sigmoids do not.
        gray = np.full((1, 3, self.preprocess.input_height, self.preprocess.input_width), 128, np.float32)
        return abs(float(self.infer(gray).sum()) - 1.0) > 1e-3

    def _tag_ids(self) -> list[str]:
        raw = self.metadata.get("EdgeVision.TagIds")
        ids = json.loads(raw) if raw else []
        return ids if len(ids) == len(self.labels) else [""] * len(self.labels)

    def _as_probabilities(self, scores: np.ndarray) -> np.ndarray:
        # Exports put softmax/sigmoid in the graph; raw logits (outside 0..1) get it applied here.
        if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
            if self.multilabel:
                return 1.0 / (1.0 + np.exp(-scores))
            shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
            return shifted / shifted.sum(axis=1, keepdims=True)
        return scores


def load_model(path: str | Path | None = None, *, intra_op_threads: int = 0) -> ImageModel:
    """Load a model directory (model.onnx + labels.txt) or an .onnx file; None = the bundled default."""
    return ImageModel(path, intra_op_threads=intra_op_threads)


def _model_file(path: Path) -> Path:
    if path.is_dir():
        candidates = [path / MODEL_FILE] if (path / MODEL_FILE).is_file() else sorted(path.glob("*.onnx"))
        if len(candidates) != 1:
            raise ModelLoadError(f"{path}: expected one .onnx model in the folder, found {len(candidates)}")
        return candidates[0]
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file or folder")
    return path


def open_session(path: Path, intra_op_threads: int = 0):
    """One onnxruntime CPU session for `path`, or ModelLoadError naming the file and the reason."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(0, intra_op_threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only; ORT's warnings are not actionable for users
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unloadable files
        opset = onnx_opset(path)
        if opset is not None and opset < MIN_OPSET:
            reason = (
                f"it is an ONNX 1.0-era export (opset {opset}); onnxruntime needs opset {MIN_OPSET} or newer:"
                " export the iteration again from Custom Vision as ONNX"
            )
        else:
            reason = " ".join(str(exc).split())[:300]
        raise ModelLoadError(f"{path}: cannot load the model: {reason}") from None


def onnx_opset(path: Path) -> int | None:
    """The default-domain opset of an ONNX file, read from its protobuf header without the onnx package."""
    try:
        data = path.read_bytes()
        for number, value in _proto_fields(data):
            if number == 8 and isinstance(value, bytes):  # ModelProto.opset_import
                entry = dict(_proto_fields(value))
                if entry.get(1, b"") in (b"", "") and isinstance(entry.get(2), int):
                    return entry[2]
    except (OSError, ValueError, IndexError):
        pass
    return None


def _proto_fields(data: bytes):
    """Top-level (field number, value) pairs of a protobuf message: varints and length-delimited only."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire in (1, 5):
            value, pos = None, pos + (8 if wire == 1 else 4)
        else:
            raise ValueError("unsupported protobuf wire type")
        yield number, value


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _int(value: object) -> int:
    try:
        return int(float(value))  # metadata says "224.0"
    except (TypeError, ValueError):
        return 0


def _triple(raw: str | None, default: float) -> tuple[float, float, float]:
    if not raw:
        return (default, default, default)
    values = tuple(float(v) for v in json.loads(raw))
    if len(values) != 3:
        raise ValueError(f"expected three values, got {raw!r}")
    return values  # type: ignore[return-value]


def _scale(image: Image.Image, factor: float) -> Image.Image:
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.BILINEAR)


def _center_crop(image: Image.Image, width: int, height: int) -> Image.Image:
    left = max(0, (image.width - width) // 2)
    top = max(0, (image.height - height) // 2)
    return image.crop((left, top, left + width, top + height))


__all__ = [
    "DEFAULT_MODEL_DIR",
    "ImageModel",
    "ModelLoadError",
    "Prediction",
    "Preprocessing",
    "load_model",
]

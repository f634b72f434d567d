"""Static int8 quantization of an exported model with onnxruntime's quantization tools.

Calibration runs real images through the scoring core's own decoding and pre-processing, so the activation
ranges are those the scorer will see. The int8 file keeps the source's metadata_props (the Custom Vision keys,
tag ids) plus `EdgeVision.Quantization`, so the scorer loads it unchanged. Settings, measured on the aerial
tiles (docs/benchmarks.md): QOperator format, per-channel weights, uint8 activations / int8 weights; the
final nodes (our export's linear head, and whatever produces the graph's outputs) stay in float: they cost
nothing, and a uint8 softmax would round every probability to a multiple of 1/255.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from edgevision.models import ImageDecodeError, ModelLoadError, decode_image, load_model
from edgevision.train.errors import ExportError

QUANTIZATION_KEY = "EdgeVision.Quantization"
FLAVOURS = ("int8",)
MAX_CALIBRATION_IMAGES = 200  # ranges stop moving well before; each image costs a full float inference
HEAD_PREFIX = "/head/"  # the linear head export.build_onnx appends
BUFFERED_OUTPUTS = 16  # intermediate results held before ranges are folded in: bounds calibration memory


def quantize_model(
    source_onnx: str | Path,
    dest_onnx: str | Path,
    calibration_images: Iterable[Path | bytes],
    *,
    max_images: int = MAX_CALIBRATION_IMAGES,
    quant_format: str = "QOperator",
    per_channel: bool = True,
) -> dict:
    """Write an int8 copy of `source_onnx` (a model with labels.txt beside it, as the scorer loads it) to
    `dest_onnx`, calibrated on at most `max_images` of `calibration_images` (files or JPEG/PNG bytes, spread
    evenly). Returns the description stored in the model's `EdgeVision.Quantization` metadata.
    `quant_format` ("QOperator" or "QDQ") and `per_channel` are there for bench/bench_quantize.py's comparison;
    the defaults are what it measured best."""
    import onnx

    source = Path(source_onnx)
    images = spread(list(calibration_images), max_images)
    if not images:
        raise ExportError(f"{source}: quantization needs at least one calibration image")
    try:
        model = load_model(source, intra_op_threads=1)
    except ModelLoadError as exc:
        raise ExportError(str(exc)) from None
    graph = onnx.load(str(source))
    description = {
        "type": "int8",
        "method": "static",
        "format": quant_format,
        "perChannel": per_channel,
        "activations": "uint8",
        "weights": "int8",
        "calibrationImages": len(images),
        "floatNodes": float_nodes(graph),
        "sourceSha256": model.sha256,
    }
    dest = Path(dest_onnx)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".quantize-") as scratch:
        quantized = Path(scratch) / "model.onnx"
        _quantize(source, quantized, _Calibration(model, images), description)
        result = onnx.load(str(quantized))
        metadata = {**model.metadata, QUANTIZATION_KEY: json.dumps(description)}
        del result.metadata_props[:]
        for key, value in metadata.items():
            result.metadata_props.add(key=key, value=value)
        onnx.save(result, str(quantized))
        os.replace(quantized, dest)  # the whole file or the old one, never half
    return description


def spread(items: Sequence, limit: int) -> list:
    """At most `limit` of `items`, evenly spaced (a sorted listing keeps every tag represented)."""
    if limit <= 0 or len(items) <= limit:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def float_nodes(graph) -> list[str]:
    """Nodes kept in float: our export's head and every node that writes a graph output."""
    outputs = {o.name for o in graph.graph.output}
    return [n.name for n in graph.graph.node if n.name.startswith(HEAD_PREFIX) or outputs.intersection(n.output)]


def _quantize(source: Path, dest: Path, reader, description: dict) -> None:
    import onnxruntime
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    # The tools advise on the root logger and onnxruntime logs every initializer it drops: not actionable.
    onnxruntime.set_default_logger_severity(3)
    quiet = _DropQuantizationAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        quantize_static(
            str(source),
            str(dest),
            reader,
            quant_format=QuantFormat[description["format"]],
            per_channel=description["perChannel"],
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=description["floatNodes"],
            extra_options={"CalibMaxIntermediateOutputs": BUFFERED_OUTPUTS},
        )
    finally:
        logging.getLogger().removeFilter(quiet)


class _DropQuantizationAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return f"onnxruntime{os.sep}quantization" not in record.pathname


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol: one pre-processed image per call, decoded lazily."""

    def __init__(self, model, images: list[Path | bytes]) -> None:
        self._model = model
        self._images: Iterator[Path | bytes] = iter(images)

    def get_next(self) -> dict | None:
        image = next(self._images, None)
        if image is None:
            return None
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        try:
            pixels = self._model.preprocess(decode_image(data))
        except ImageDecodeError as exc:
            name = "an image" if isinstance(image, bytes) else str(image)
            raise ExportError(f"calibration image {name}: {exc}") from None
        return {self._model.input_name: pixels[np.newaxis]}

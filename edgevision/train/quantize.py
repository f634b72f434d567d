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
FLOAT_OPS = {"Softmax", "Sigmoid", "ArgMax", "ArrayFeatureExtractor", "ZipMap"}
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
    graph = without_image_scaler(onnx.load(str(source)))
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
        quantized, prepared = Path(scratch) / "model.onnx", Path(scratch) / "source.onnx"
        onnx.save(graph, str(prepared))
        try:
            _quantize(prepared, quantized, _Calibration(model, images), description)
        except (RuntimeError, ValueError) as exc:  # onnx's converter and onnxruntime's tools raise these
            reason = " ".join(str(exc).split())[:200]
            raise ExportError(f"{source}: onnxruntime cannot quantize this graph: {reason}") from None
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
    """Nodes kept in float: our export's head, softmax/sigmoid anywhere, and every node that writes a graph
    output (or, in classic Custom Vision exports, follows the softmax: ArgMax, label lookup, ZipMap)."""
    outputs = {o.name for o in graph.graph.output}
    return [
        n.name
        for n in graph.graph.node
        if n.name.startswith(HEAD_PREFIX) or n.op_type in FLOAT_OPS or outputs.intersection(n.output)
    ]


def without_image_scaler(graph):
    """Classic Custom Vision exports start with ImageScaler (opset 7, dropped from ONNX since): onnx's opset
    converter, which the quantizer runs, has no schema for it. The same x * scale + bias as Mul and Add
    (constants as nodes: these IR 3 files would need initializers listed as inputs too)."""
    from onnx import helper, numpy_helper

    for index, node in enumerate(list(graph.graph.node)):
        if node.op_type != "ImageScaler":
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        bias = np.asarray(attributes.get("bias", [0.0, 0.0, 0.0]), np.float32).reshape(1, -1, 1, 1)
        scale = np.asarray(attributes.get("scale", 1.0), np.float32)
        scale_name, bias_name, scaled = (f"{node.name}.{part}" for part in ("scale", "bias", "scaled"))
        replacement = [
            helper.make_node("Constant", [], [scale_name], value=numpy_helper.from_array(scale, scale_name)),
            helper.make_node("Constant", [], [bias_name], value=numpy_helper.from_array(bias, bias_name)),
            helper.make_node("Mul", [node.input[0], scale_name], [scaled], name=f"{node.name}/Mul"),
            helper.make_node("Add", [scaled, bias_name], list(node.output), name=f"{node.name}/Add"),
        ]
        graph.graph.node.remove(node)
        for offset, new in enumerate(replacement):
            graph.graph.node.insert(index + offset, new)
    return graph


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

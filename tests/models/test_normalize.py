"""The one-pass normalisation of the scoring core against the textbook formula."""

from __future__ import annotations

import numpy as np
import pytest

from edgevision.models import load_model
from tests.conftest import shared_path


@pytest.mark.parametrize("model_name", ["bundled", "cat-or-dog", "computer-multilabel"])
def test_one_pass_normalisation_equals_the_textbook_formula(model_name: str) -> None:
    model = load_model(None if model_name == "bundled" else shared_path(f"models/customvision-exports/{model_name}"))
    rgb = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    p = model.preprocess
    expected = (rgb.astype(np.float32) / (255.0 if p.scale_to_unit else 1.0) - np.float32(p.mean)) / np.float32(p.std)
    if p.bgr:
        expected = expected[:, :, ::-1]
    got = p.normalize(rgb)
    assert got.flags["C_CONTIGUOUS"] and got.dtype == np.float32
    assert np.abs(got - expected.transpose(2, 0, 1)).max() < 1e-5

"""Fixtures for the scoring core's tests: the bundled model and the real Custom Vision exports."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from edgevision.models import ImageModel, load_model


def _register_imagegen() -> None:
    # Test folders are not packages (--import-mode=importlib): make the image builders importable by name.
    if "imagegen" not in sys.modules:
        spec = importlib.util.spec_from_file_location("imagegen", Path(__file__).with_name("imagegen.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["imagegen"] = module
        spec.loader.exec_module(module)


_register_imagegen()


@pytest.fixture(scope="session")
def default_model() -> ImageModel:
    return load_model()

"""Fixtures for the scoring service's tests: real `edgevision serve` processes and a tiny photo web server."""

from __future__ import annotations

import functools
import http.server as http_server
import importlib.util
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import ScoringService, shared_path

HERE = Path(__file__).resolve().parent
KEY = "s3cret-prediction-key"
EXPORTS = "models/customvision-exports"


def _register_imagegen() -> None:
    # The image builders live in tests/models; test folders are not packages (--import-mode=importlib).
    if "imagegen" not in sys.modules:
        spec = importlib.util.spec_from_file_location("imagegen", HERE.parent / "models" / "imagegen.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["imagegen"] = module
        spec.loader.exec_module(module)


_register_imagegen()


@pytest.fixture(scope="session")
def service(scoring_service: ScoringService) -> ScoringService:
    """The service on the bundled ImageNet model, default settings."""
    return scoring_service


@pytest.fixture(scope="session")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="session")
def catdog_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScoringService]:
    """cat-or-dog export as the default model (MODEL_DIR); PUBLISHED_DIR holds `multi` (the multi-label export) and
    `legacy` (the unloadable ONNX 1.0 export)."""
    published = tmp_path_factory.mktemp("published")
    for name, export in (("multi", "computer-multilabel"), ("legacy", "legacy-onnx10-plankton")):
        (published / name).mkdir()
        for file in ("model.onnx", "labels.txt"):
            (published / name / file).symlink_to(shared_path(f"{EXPORTS}/{export}/{file}"))
    env = {"MODEL_DIR": str(shared_path(f"{EXPORTS}/cat-or-dog")), "PUBLISHED_DIR": str(published)}
    service = ScoringService(env=env)
    service.published = published  # type: ignore[attr-defined]
    yield service
    service.close()


@pytest.fixture(scope="session")
def secured_service() -> Iterator[ScoringService]:
    """The default model behind a Prediction-Key; loopback URLs allowed (for the local photo server);
    at most 5 predictions per answer."""
    service = ScoringService(env={"PREDICTION_KEY": KEY, "URL_ALLOW_PRIVATE": "true", "MAX_PREDICTIONS": "5"})
    yield service
    service.close()


class _QuietHandler(http_server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session")
def photo_server() -> Iterator[str]:
    """A local web server serving the bundled wildlife photos; yields its base URL."""
    import imagegen

    handler = functools.partial(_QuietHandler, directory=str(imagegen.WILDLIFE))
    server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()

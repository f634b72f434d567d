"""A real `edgevision portal` process on a loopback port, and the official SDK's clients pointed at it."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT, ScoringService, free_port, wait_until
from tests.portal.postgres import Cluster, Unavailable

training = pytest.importorskip(
    "azure.cognitiveservices.vision.customvision.training", reason="the Custom Vision SDK (dev extra) is absent"
)
prediction = pytest.importorskip("azure.cognitiveservices.vision.customvision.prediction")
msrest_auth = pytest.importorskip("msrest.authentication")

TRAINING_KEY = "training-key-for-tests"
PREDICTION_KEY = "prediction-key-for-tests"
AERIAL_MINI = ROOT / "tests" / "data" / "aerial-mini"
# The portal's database backends: a test parametrized over them (the `portal` fixture indirectly, or `database_url`)
# runs once on SQLite in the data folder and once on a throwaway PostgreSQL server.
BACKENDS = ["sqlite", "postgresql"]


class Portal(ScoringService):
    """`edgevision portal --data DIR` with both keys; `stop()` / `kill()` and `start()` keep port and data."""

    def __init__(
        self,
        data: Path,
        env: dict[str, str] | None = None,
        published: Path | None = None,
        database: str | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = data
        self.database = database  # None: SQLite in the data folder
        self.command = [PYTHON, "-m", "edgevision", "portal", "--data", str(data), "--port", str(self.port)]
        if published is not None:
            self.command += ["--published", str(published)]
        if database is not None:
            self.command += ["--database", database]
        keys = {"TRAINING_KEY": TRAINING_KEY, "PREDICTION_KEY": PREDICTION_KEY}
        self.env = {**os.environ, **keys, **(env or {})}
        self.log = Path(tempfile.mkstemp(prefix="edgevision-portal-", suffix=".log")[1])
        self.start()

    def worker_pids(self) -> list[int]:
        tasks = Path(f"/proc/{self.process.pid}/task")
        return [int(pid) for task in tasks.iterdir() for pid in (task / "children").read_text().split()]

    def kill(self) -> None:
        """kill -9 the portal and its training worker at once, as a power cut would."""
        workers = self.worker_pids()
        self.process.kill()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)
        wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), what="the worker to die")

    def trainer(self, endpoint_suffix: str = "", key: str = TRAINING_KEY, header: str = "Training-key"):
        credentials = msrest_auth.ApiKeyCredentials(in_headers={header: key})
        return training.CustomVisionTrainingClient(self.url + endpoint_suffix, credentials)

    def predictor(self, key: str = PREDICTION_KEY, header: str = "Prediction-key"):
        credentials = msrest_auth.ApiKeyCredentials(in_headers={header: key})
        return prediction.CustomVisionPredictionClient(self.url, credentials)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    try:
        cluster = Cluster()
    except Unavailable as exc:
        if os.environ.get("CI"):  # scripts/setup.sh test installs the server: CI must not pass by skipping
            pytest.fail(f"PostgreSQL cannot run: {exc}")
        pytest.skip(f"PostgreSQL cannot run: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None (SQLite in the data folder) or a fresh PostgreSQL database, by the test's backend parameter."""
    backend = getattr(request, "param", "sqlite")
    return request.getfixturevalue("postgres_cluster").new_database() if backend == "postgresql" else None


@pytest.fixture
def portal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Portal]:
    """The portal process; on SQLite unless the test parametrizes it (indirect) with a BACKENDS entry."""
    backend = getattr(request, "param", "sqlite")
    database = request.getfixturevalue("postgres_cluster").new_database() if backend == "postgresql" else None
    service = Portal(tmp_path / "portal-data", published=tmp_path / "published", database=database)
    yield service
    service.close()


def aerial_images(per_tag: int = 10) -> dict[str, list[Path]]:
    return {
        folder.name: sorted(folder.glob("*"))[:per_tag] for folder in sorted(AERIAL_MINI.iterdir()) if folder.is_dir()
    }

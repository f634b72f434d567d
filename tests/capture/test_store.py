"""The capture store: atomic writes, the kill -9 invariant, retention oldest first by size and by age."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import Image

from edgevision.capture.store import CaptureStore
from tests.capture.conftest import DOG, ELEPHANTS, ZEBRAS_1, sample_sidecar
from tests.conftest import wait_until

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def photo_jpeg(path: Path) -> bytes:
    return path.read_bytes()


def save(store: CaptureStore, jpeg: bytes, when: datetime, frame: int, tag: str = "zebra"):
    return store.save(jpeg, sample_sidecar(tag, frame), captured_at=when, frame=frame, tag=tag)


def assert_invariant(root: Path) -> list[Path]:
    """Every .jpg decodes completely and has its sidecar naming it; returns the JPEGs."""
    jpegs = sorted(root.rglob("*.jpg"))
    for jpeg in jpegs:
        data = jpeg.read_bytes()
        assert data.endswith(b"\xff\xd9"), f"{jpeg} is truncated"
        Image.open(io.BytesIO(data)).load()
        sidecar = json.loads(jpeg.with_suffix(".json").read_text("utf-8"))
        assert sidecar["file"] == jpeg.name
    return jpegs


def test_save_writes_jpeg_and_sidecar_and_nothing_else(tmp_path: Path) -> None:
    store = CaptureStore(tmp_path)
    capture = save(store, photo_jpeg(ZEBRAS_1), NOW, 7)
    assert capture.jpeg.read_bytes() == photo_jpeg(ZEBRAS_1)
    assert json.loads(capture.sidecar.read_text())["matchedTag"] == "zebra"
    assert sorted(p.name for p in capture.jpeg.parent.iterdir()) == sorted([capture.jpeg.name, capture.sidecar.name])
    assert capture.jpeg.parent.name == "2026-11-22"
    assert assert_invariant(tmp_path) == [capture.jpeg]


def test_size_retention_deletes_oldest_first(tmp_path: Path) -> None:
    jpeg = photo_jpeg(DOG)
    store = CaptureStore(tmp_path, max_mb=3.5 * len(jpeg) / (1024 * 1024))
    saved = [save(store, jpeg, NOW + timedelta(seconds=i), i) for i in range(6)]
    removed = store.prune(NOW)
    kept = store.captures()
    assert [c.jpeg for c in removed] == [c.jpeg for c in saved[: len(removed)]]  # the oldest, in order
    assert [c.jpeg for c in kept] == [c.jpeg for c in saved[len(removed) :]]  # the newest survive
    assert store.total_bytes <= store.max_bytes < store.total_bytes + removed[-1].size
    assert sorted(tmp_path.rglob("*.jpg")) == [c.jpeg for c in kept]
    assert not any(c.sidecar.exists() for c in removed)


def test_age_retention_and_a_fresh_store_sees_what_is_on_disk(tmp_path: Path) -> None:
    jpeg = photo_jpeg(ELEPHANTS)
    old = save(CaptureStore(tmp_path), jpeg, NOW - timedelta(days=40), 1, "african elephant")
    recent = save(CaptureStore(tmp_path), jpeg, NOW - timedelta(days=1), 2, "african elephant")
    store = CaptureStore(tmp_path, max_age_days=30)
    assert [c.jpeg for c in store.captures()] == [old.jpeg, recent.jpeg]
    assert [c.jpeg for c in store.prune(NOW)] == [old.jpeg]
    assert not old.jpeg.parent.exists()  # its day folder went with it
    assert sorted(tmp_path.rglob("*.jpg")) == [recent.jpeg]


def test_leftovers_of_an_interrupted_write_are_cleared_at_start(tmp_path: Path) -> None:
    kept = save(CaptureStore(tmp_path), photo_jpeg(DOG), NOW, 1, "malamute")
    day = kept.jpeg.parent
    (day / ".20261122T120001_000000Z_000002_malamute.jpg.tmp").write_bytes(photo_jpeg(DOG)[:1000])
    orphan = day / "20261122T120002_000000Z_000003_malamute.json"
    orphan.write_text("{}")
    store = CaptureStore(tmp_path)
    assert [c.jpeg for c in store.captures()] == [kept.jpeg]
    assert sorted(p.name for p in day.iterdir()) == sorted([kept.jpeg.name, kept.sidecar.name])


WRITER = """
import sys
from datetime import datetime, timezone
from pathlib import Path
from edgevision.capture.store import CaptureStore
from tests.capture.conftest import sample_sidecar
store = CaptureStore(Path(sys.argv[1]))
jpeg = Path(sys.argv[2]).read_bytes()
payload = jpeg[:-2] + b"\\0" * 8_000_000 + jpeg[-2:]  # a large JPEG: writes take long enough to be hit
frame = 0
while True:
    now = datetime.now(timezone.utc)
    store.save(payload, sample_sidecar("malamute", frame), captured_at=now, frame=frame, tag="malamute")
    frame += 1
"""


@pytest.mark.slow
def test_kill_9_at_any_moment_leaves_no_partial_capture(tmp_path: Path) -> None:
    root = tmp_path / "captures"
    mid_write = 0
    for round_ in range(4):
        CaptureStore(root)  # what the next start does: clear the previous round's leftovers
        done = len(list(root.rglob("*.jpg")))
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(DOG)])
        try:
            # Let it complete `round_` captures, then kill it as soon as the next write is under way.
            target = done + round_
            wait_until(lambda: len(list(root.rglob("*.jpg"))) >= target, 60, "captures")  # noqa: B023
            wait_until(lambda: any(root.rglob(".*.tmp")), 60, "a write in progress")
        finally:
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait(10)
        mid_write += bool(list(root.rglob(".*.tmp")))
        assert_invariant(root)
        assert not [p for p in root.rglob("*") if p.is_file() and not p.name.endswith((".jpg", ".json", ".tmp"))]
    store = CaptureStore(root)
    assert not list(root.rglob(".*.tmp"))
    assert len(store) == len(assert_invariant(root)) > 0
    assert mid_write, "no kill landed during a write: the test proved nothing"

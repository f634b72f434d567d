"""kill -9 during an upload and during training, then a restart: a consistent database, every acknowledged
image kept whole, and the interrupted training finished by the new worker."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import threading

import pytest
from PIL import Image

from edgevision.files import is_temp_file
from edgevision.portal.db import open_database
from tests.conftest import wait_until
from tests.portal.conftest import BACKENDS, aerial_images, training
from tests.portal.test_sdk_project import trained, upload


def variants(count: int) -> list[bytes]:
    """`count` distinct JPEGs made from real tiles (re-encoded at different qualities)."""
    tiles = [p for paths in aerial_images(10).values() for p in paths]
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.open(tiles[i % len(tiles)]).save(buffer, "JPEG", quality=60 + i // len(tiles))
        out.append(buffer.getvalue())
    return out


def check_consistent(portal) -> int:
    """The database's own checks (SQLite's; PostgreSQL checks foreign keys on every commit) and every image row's
    file whole; returns how many images the database holds."""
    data = portal.data
    if portal.database is None:
        check = sqlite3.connect(data / "portal.db")
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert check.execute("PRAGMA foreign_key_check").fetchall() == []
        check.close()
    db = open_database(portal.database, data)
    rows = db.query("SELECT b.sha256, b.format FROM images i JOIN blobs b ON b.sha256 = i.sha256")
    for sha256, _ in rows:
        (stored,) = [p for p in (data / "images" / sha256[:2]).glob(f"{sha256}.*") if "thumb" not in p.name]
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha256
    for path in (data / "images").rglob("*"):
        if path.is_file() and not is_temp_file(path) and "thumb" not in path.name:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name.split(".")[0]
    db.close()
    return len(rows)


@pytest.mark.parametrize("portal", BACKENDS, indirect=True)
def test_kill_9_during_uploads_keeps_every_acknowledged_image(portal) -> None:
    trainer = portal.trainer()
    project = trainer.create_project("killed upload")
    tag = trainer.create_tag(project.id, "Barren")
    pictures = variants(90)
    acknowledged: list[str] = []

    def send() -> None:
        for start in range(0, len(pictures), 6):
            batch = [
                training.models.ImageFileCreateEntry(name=f"{i}.jpg", contents=pictures[i], tag_ids=[tag.id])
                for i in range(start, start + 6)
            ]
            try:
                summary = trainer.create_images_from_files(
                    project.id, training.models.ImageFileCreateBatch(images=batch)
                )
            except Exception:
                return  # the portal is gone
            acknowledged.extend(i.image.id for i in summary.images if i.status == "OK")

    sender = threading.Thread(target=send)
    sender.start()
    wait_until(lambda: len(acknowledged) >= 12, what="the first batches")
    portal.kill()
    sender.join(60)
    stored = check_consistent(portal)
    assert stored >= len(acknowledged) > 0
    portal.start()
    listed = {i.id for i in trainer.get_tagged_images(project.id, take=256)}
    assert set(acknowledged) <= listed
    assert trainer.get_tagged_image_count(project.id) == stored


@pytest.mark.parametrize("portal", BACKENDS, indirect=True)
def test_kill_9_during_training_then_the_restarted_portal_finishes_it(portal) -> None:
    trainer = portal.trainer()
    project = trainer.create_project("killed training")
    images = aerial_images(per_tag=10)
    tags = {name: trainer.create_tag(project.id, name).id for name in images}
    upload(trainer, project.id, tags, images)
    iteration = trainer.train_project(project.id)
    cache = portal.data / "cache" / "features"
    wait_until(lambda: cache.is_dir() and any(cache.rglob("*.npy")), timeout=120, what="feature extraction to start")
    portal.kill()
    assert trainer_status(portal, iteration.id) == "Training"
    check_consistent(portal)
    portal.start()
    finished = trained(trainer, project.id, iteration)
    assert finished.status == "Completed", finished.training_error_details
    assert trainer.get_iteration_performance(project.id, iteration.id).precision > 0
    folders = list((portal.data / "projects" / project.id / "iterations").iterdir())
    assert [f.name for f in folders] == ["1"]  # the killed run left nothing behind


def trainer_status(portal, iteration_id: str) -> str:
    db = open_database(portal.database, portal.data)
    try:
        return db.one("SELECT status FROM iterations WHERE id = ?", (iteration_id,))["status"]
    finally:
        db.close()

"""`edgevision portal --copy-to`: a device's SQLite rows into a new PostgreSQL database (a real server), then the
portal on the same data folder with `--database` serves the same project to the official SDK."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import PYTHON
from tests.portal.conftest import Portal, aerial_images
from tests.portal.test_sdk_project import trained, upload


def copy_to(data: Path, target: str, *extra: str) -> subprocess.CompletedProcess:
    command = [PYTHON, "-m", "edgevision", "portal", "--data", str(data), *extra, "--copy-to", target]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_a_sqlite_portal_moves_to_postgresql_and_keeps_its_project(postgres_cluster, tmp_path: Path) -> None:
    data = tmp_path / "portal-data"
    device = Portal(data)
    try:
        trainer = device.trainer()
        project = trainer.create_project("land use")
        images = aerial_images(per_tag=6)
        tags = {name: trainer.create_tag(project.id, name).id for name in images}
        assert upload(trainer, project.id, tags, images).is_batch_successful
        iteration = trained(trainer, project.id, trainer.train_project(project.id))
        assert iteration.status == "Completed", iteration.training_error_details
        trainer.publish_iteration(project.id, iteration.id, "landuse", "local")
        photo = aerial_images(per_tag=7)["Developed"][-1].read_bytes()
        before = device.predictor().classify_image(project.id, "landuse", photo)
    finally:
        device.close()

    url = postgres_cluster.new_database()
    copied = copy_to(data, url)
    assert copied.returncode == 0, copied.stderr
    assert "18 images" in copied.stdout and "1 iterations" in copied.stdout
    again = copy_to(data, url)  # a second copy would mix two states: refused in one line, nothing written
    assert again.returncode != 0 and "is not empty" in again.stderr and "Traceback" not in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1

    server = Portal(data, database=url)
    try:
        trainer = server.trainer()
        assert [p.name for p in trainer.get_projects()] == ["land use"]
        assert trainer.get_tagged_image_count(project.id) == 18
        assert {t.name: t.image_count for t in trainer.get_tags(project.id)} == dict.fromkeys(images, 6)
        [moved] = trainer.get_iterations(project.id)
        assert moved.id == iteration.id and moved.publish_name == "landuse"
        after = server.predictor().classify_image(project.id, "landuse", photo)
        assert [(p.tag_name, round(p.probability, 6)) for p in after.predictions] == [
            (p.tag_name, round(p.probability, 6)) for p in before.predictions
        ]
        stored = {p.id for p in trainer.query_predictions(project.id, {"orderBy": "Newest"}).results}
        assert stored == {before.id, after.id}  # the device's stored prediction came along
        assert trainer.get_image_performance_count(project.id, iteration.id) == 18
    finally:
        server.close()
    back = copy_to(data, str(tmp_path / "back" / "portal.db"), "--database", url)  # and back into a SQLite file
    assert back.returncode == 0, back.stderr
    assert "18 images" in back.stdout and "2 predictions" in back.stdout


def test_copying_without_a_database_or_onto_itself_is_a_one_line_error(tmp_path: Path) -> None:
    missing = copy_to(tmp_path / "nothing-here", str(tmp_path / "new.db"))
    assert missing.returncode != 0 and "no portal database in" in missing.stderr
    assert not (tmp_path / "nothing-here").exists() or not any((tmp_path / "nothing-here").iterdir())
    (tmp_path / "portal.db").touch()
    own = copy_to(tmp_path, str(tmp_path / "portal.db"))
    assert own.returncode != 0 and "the portal's own database" in own.stderr
    for result in (missing, own):
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr

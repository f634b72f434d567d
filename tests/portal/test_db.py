"""The portal's data layer on both backends (SQLite in the data folder, a real PostgreSQL server): migrations,
the service's reads and writes, the ON CONFLICT forms, one writer at a time, values either backend may store,
a server that drops its connections, and what a bad PORTAL_DATABASE_URL says."""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from edgevision.portal.db import MIGRATIONS, DatabaseError, UnstorableValue, open_database, redacted
from edgevision.portal.errors import ApiError
from edgevision.portal.iterations import Iterations
from edgevision.portal.service import NewImage, Portal, now
from edgevision.portal.settings import PortalSettings
from tests.conftest import PYTHON, free_port
from tests.portal.conftest import BACKENDS

both = pytest.mark.parametrize("database_url", BACKENDS, indirect=True)


def picture(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (shade, 255 - shade, 90)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def service(tmp_path: Path, database_url: str | None) -> Portal:
    return Portal(PortalSettings(data_dir=tmp_path / "data", database_url=database_url))


def add_iteration(service: Portal, project_id: str, seconds: float) -> str:
    stamp = now()
    with service.db.transaction() as cur:
        cur.execute(
            "INSERT INTO iterations (id, project_id, name, status, created, last_modified, domain_id,"
            " classification_type, training_type, reserved_budget_in_hours, training_seconds, fingerprint)"
            " VALUES ('00000000-0000-4000-8000-000000000001', ?, 'Iteration 1', 'Completed', ?, ?, 'd',"
            " 'Multiclass', 'Regular', 0, ?, 'f')",
            (project_id, stamp, stamp, seconds),
        )
    return "00000000-0000-4000-8000-000000000001"


@both
def test_a_new_database_is_migrated_once_and_reopening_keeps_its_rows(service, tmp_path, database_url) -> None:
    assert service.db.version() == len(MIGRATIONS)
    service.create_project("kept")
    again = Portal(PortalSettings(data_dir=tmp_path / "data", database_url=database_url))
    assert again.db.version() == len(MIGRATIONS)
    assert [p["name"] for p in again.projects()] == ["kept"]


@both
def test_a_database_from_a_newer_portal_is_refused(service, tmp_path, database_url) -> None:
    with service.db.transaction() as cur:
        cur.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS) + 1,))
    with pytest.raises(DatabaseError, match=f"schema version {len(MIGRATIONS) + 1} is newer"):
        open_database(database_url, tmp_path / "data")


@both
def test_images_tags_and_pages_read_back_alike(service) -> None:
    project = service.create_project("pages")["id"]
    # names whose code point order is not a natural-language collation's (the test server's is ICU en-US)
    tags = {name: service.create_tag(project, name, None, None)["id"] for name in ("b", "B", "_z")}
    batch = [NewImage(picture(shade)) for shade in range(0, 250, 50)]
    status, summary = service.create_images(project, batch, list(tags.values()), {"camera": "north"})
    assert status == 200 and [i["status"] for i in summary["images"]] == ["OK"] * 5
    again = service.create_images(project, [NewImage(picture(0))], [], {})[1]["images"][0]
    assert again["status"] == "OKDuplicate" and again["image"]["id"] == summary["images"][0]["image"]["id"]

    oldest = sorted((i["image"] for i in summary["images"]), key=lambda i: (i["created"], i["id"]))
    listed = service.list_images(project, take=2, skip=1, order="Oldest")
    assert [i["id"] for i in listed] == [i["id"] for i in oldest[1:3]]
    assert [t["tagName"] for t in listed[0]["tags"]] == ["B", "_z", "b"]  # code point order on every backend
    assert listed[0]["metadata"] == {"camera": "north"}
    assert service.list_images(project, status="tagged", count=True) == 5
    assert {t["name"]: t["imageCount"] for t in service.tags(project)} == {"b": 5, "B": 5, "_z": 5}

    first = oldest[0]["id"]
    sha256 = service.db.one("SELECT sha256 FROM images WHERE id = ?", (first,))["sha256"]
    service.remove_image_tags(project, [first], [tags["b"]])
    assert {t["name"]: t["imageCount"] for t in service.tags(project)}["b"] == 4
    service.delete_images(project, [first], all_images=False, all_iterations=False)
    assert service.list_images(project, count=True) == 4
    assert service.blob(sha256) is None and not service.store.path(sha256, "PNG").exists()


@both
def test_deleting_a_project_cascades(service) -> None:
    project = service.create_project("gone")["id"]
    tag = service.create_tag(project, "t", None, None)["id"]
    service.create_images(project, [NewImage(picture(7))], [tag], {})
    add_iteration(service, project, 1.5)
    service.delete_project(project)
    for table in ("projects", "tags", "images", "image_tags", "iterations", "blobs"):
        assert service.db.one(f"SELECT COUNT(*) AS n FROM {table}")["n"] == 0, table


@both
def test_the_on_conflict_forms_and_stored_values(service) -> None:
    project = service.create_project("conflicts")["id"]
    iterations = Iterations(service)
    kept = {"id": None, "iteration": None, "created": "2026-01-02T03:04:05.000Z", "predictions": []}
    application = "a-camera-application-name-" * 4  # longer than the VARCHAR(64) the schema once declared
    for _ in range(2):  # ON CONFLICT (source_key) DO NOTHING, and the blob's ON CONFLICT (sha256) DO NOTHING
        iterations.store_prediction(project, picture(3), dict(kept), application, "camera", "capture:1.jpg")
    rows = service.db.query("SELECT application, source_key FROM predictions")
    assert [(r["application"], r["source_key"]) for r in rows] == [(application, "capture:1.jpg")]
    assert service.db.one("SELECT COUNT(*) FROM blobs")[0] == 1  # rows answer by position too

    iteration = add_iteration(service, project, 12.34)
    assert service.iteration_row(project, iteration)["training_seconds"] == 12.34  # double, not single, precision
    upsert = (
        "INSERT INTO exports (iteration_id, platform, flavor, status, file_name, created)"
        " VALUES (?, 'ONNX', '', ?, 'f.zip', ?) ON CONFLICT (iteration_id, platform, flavor) DO UPDATE"
        " SET status = excluded.status WHERE exports.status = 'Failed'"
    )
    statuses = []
    for status in ("Failed", "Exporting", "Done"):  # a failed export is queued again; a queued one stays queued
        with service.db.transaction() as cur:
            cur.execute(upsert, (iteration, status, now()))
        statuses.append(service.db.one("SELECT status FROM exports")["status"])
    assert statuses == ["Failed", "Exporting", "Exporting"]


@both
def test_a_failed_transaction_leaves_nothing(service) -> None:
    with pytest.raises(ApiError), service.db.transaction() as cur:
        cur.execute("INSERT INTO blobs (sha256, width, height, size_bytes, format) VALUES ('x', 1, 1, 1, 'PNG')")
        raise ApiError(400, "BadRequest", "changed my mind")
    assert service.db.query("SELECT * FROM blobs") == []


@both
def test_writers_wait_for_each_other(service) -> None:
    """Two clients create the same project at once: the second one's name check waits for the first one's
    insert (there is no unique index on project names; the service checks inside its transaction)."""
    began, answers = threading.Event(), []

    def second() -> None:
        began.set()
        try:
            service.create_project("same")
        except ApiError as exc:
            answers.append(exc.code)

    with service.db.transaction() as cur:
        cur.execute(
            "INSERT INTO projects (id, name, description, domain_id, classification_type, target_export_platforms,"
            " created, last_modified) VALUES ('00000000-0000-4000-8000-000000000002', 'same', '', 'd', 'Multiclass',"
            " '[]', ?, ?)",
            (now(), now()),
        )
        thread = threading.Thread(target=second)
        thread.start()
        began.wait(10)
        time.sleep(0.5)  # the second writer reaches its transaction's start while this one still holds it
    thread.join(60)
    assert answers == ["BadRequestProjectNameNotUnique"]
    assert [p["name"] for p in service.projects()] == ["same"]


@both
def test_text_with_a_nul_character_is_refused_on_every_backend(service) -> None:
    with pytest.raises(UnstorableValue):
        service.create_project("bad\x00name")
    project = service.create_project("good")["id"]
    with pytest.raises(UnstorableValue):
        service.list_images(project, tag_ids=["\x00"])
    assert [p["name"] for p in service.projects()] == ["good"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_dropped_connection_is_replaced(service, database_url, postgres_cluster) -> None:
    database = database_url.rsplit("/", 1)[1]
    drop = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
    service.create_project("before")
    assert postgres_cluster.execute(drop) == [(True,)]
    service.create_project("after")  # a write transaction starts on a new connection
    assert postgres_cluster.execute(drop) == [(True,)]
    assert [p["name"] for p in service.projects()] == ["before", "after"]  # and so does a read


def test_urls_are_shown_without_their_password() -> None:
    assert redacted("postgresql://portal:s3cret@db.local:5432/portal") == "postgresql://portal:***@db.local:5432/portal"
    assert redacted("postgresql://portal@db.local/portal") == "postgresql://portal@db.local/portal"
    assert redacted("postgres://db.local/p?sslmode=require&password=s3cret") == (
        "postgres://db.local/p?sslmode=require&password=***"
    )


def run_portal(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [PYTHON, "-m", "edgevision", "portal", "--data", str(tmp_path), "--port", str(free_port()), *args]
    return subprocess.run(command, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=60)


def test_a_database_url_that_is_not_postgresql_is_a_one_line_error(tmp_path: Path) -> None:
    run = run_portal(tmp_path, "--database", "mysql://portal:s3cret@127.0.0.1/portal")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "edgevision portal: error: PORTAL_DATABASE_URL 'mysql://portal:***@127.0.0.1/portal': give a"
        " postgresql://user@host:port/database URL, or leave it unset for SQLite in the data folder"
    ]
    assert not (tmp_path / "portal.db").exists()


def test_a_server_that_cannot_be_reached_is_a_one_line_error(tmp_path: Path) -> None:
    url = f"postgresql://portal:s3cret@127.0.0.1:{free_port()}/portal"
    run = run_portal(tmp_path, env={"PORTAL_DATABASE_URL": url})
    assert run.returncode == 2
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"edgevision portal: error: cannot connect to {redacted(url)}: ")
    assert "s3cret" not in run.stderr

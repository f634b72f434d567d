"""The portal's database: SQLite (WAL, synchronous=FULL) by default, in plain SQL kept portable (no SQLite-only
types or functions in the schema or queries; the dialect details are the `?` placeholders and `BEGIN
IMMEDIATE`, both in this file's Database class), versioned by
MIGRATIONS so a newer portal upgrades an older data folder in place.

One connection per thread; a transaction is `with db.transaction() as cur:`, committed on success.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MIGRATIONS: list[str] = [
    # 1: projects, tags, images (content stored once per hash), tagging, iterations and their image snapshot,
    # exports, stored predictions.
    """
    CREATE TABLE projects (
        id VARCHAR(36) PRIMARY KEY,
        name VARCHAR(256) NOT NULL,
        description TEXT NOT NULL,
        domain_id VARCHAR(36) NOT NULL,
        classification_type VARCHAR(16) NOT NULL,
        target_export_platforms TEXT NOT NULL,
        created VARCHAR(40) NOT NULL,
        last_modified VARCHAR(40) NOT NULL
    );
    CREATE TABLE tags (
        id VARCHAR(36) PRIMARY KEY,
        project_id VARCHAR(36) NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        name VARCHAR(256) NOT NULL,
        description TEXT NOT NULL,
        type VARCHAR(16) NOT NULL,
        created VARCHAR(40) NOT NULL,
        UNIQUE (project_id, name)
    );
    CREATE TABLE blobs (
        sha256 CHAR(64) PRIMARY KEY,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL,
        format VARCHAR(8) NOT NULL
    );
    CREATE TABLE images (
        id VARCHAR(36) PRIMARY KEY,
        project_id VARCHAR(36) NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        sha256 CHAR(64) NOT NULL REFERENCES blobs(sha256),
        created VARCHAR(40) NOT NULL,
        metadata TEXT NOT NULL,
        UNIQUE (project_id, sha256)
    );
    CREATE INDEX images_by_date ON images (project_id, created, id);
    CREATE TABLE image_tags (
        image_id VARCHAR(36) NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        tag_id VARCHAR(36) NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
        created VARCHAR(40) NOT NULL,
        PRIMARY KEY (image_id, tag_id)
    );
    CREATE INDEX image_tags_by_tag ON image_tags (tag_id, image_id);
    CREATE TABLE iterations (
        id VARCHAR(36) PRIMARY KEY,
        project_id VARCHAR(36) NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        name VARCHAR(256) NOT NULL,
        status VARCHAR(16) NOT NULL,
        created VARCHAR(40) NOT NULL,
        last_modified VARCHAR(40) NOT NULL,
        trained_at VARCHAR(40),
        domain_id VARCHAR(36) NOT NULL,
        classification_type VARCHAR(16) NOT NULL,
        training_type VARCHAR(16) NOT NULL,
        reserved_budget_in_hours INTEGER NOT NULL,
        training_seconds REAL,
        publish_name VARCHAR(256),
        prediction_resource_id TEXT,
        error TEXT,
        number INTEGER,
        fingerprint CHAR(64) NOT NULL,
        labels TEXT,
        UNIQUE (project_id, name)
    );
    CREATE TABLE iteration_images (
        iteration_id VARCHAR(36) NOT NULL REFERENCES iterations(id) ON DELETE CASCADE,
        image_id VARCHAR(36) NOT NULL,
        sha256 CHAR(64) NOT NULL,
        created VARCHAR(40) NOT NULL,
        tag_ids TEXT NOT NULL,
        probabilities TEXT,
        PRIMARY KEY (iteration_id, image_id)
    );
    CREATE TABLE exports (
        iteration_id VARCHAR(36) NOT NULL REFERENCES iterations(id) ON DELETE CASCADE,
        platform VARCHAR(16) NOT NULL,
        flavor VARCHAR(16) NOT NULL,
        status VARCHAR(16) NOT NULL,
        file_name TEXT,
        created VARCHAR(40) NOT NULL,
        PRIMARY KEY (iteration_id, platform, flavor)
    );
    CREATE TABLE predictions (
        id VARCHAR(36) PRIMARY KEY,
        project_id VARCHAR(36) NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        iteration_id VARCHAR(36),
        sha256 CHAR(64) NOT NULL REFERENCES blobs(sha256),
        created VARCHAR(40) NOT NULL,
        application VARCHAR(64),
        source VARCHAR(16) NOT NULL,
        source_key TEXT UNIQUE,
        predictions TEXT NOT NULL
    );
    CREATE INDEX predictions_by_date ON predictions (project_id, created, id);
    """,
]


class Database:
    """A SQLite file with the schema at the newest version; safe to share between threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.migrate()

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a kill -9 or power cut keeps every committed row
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        conn = self.connection()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")  # writers queue here instead of failing half-way with "locked"
        try:
            yield cur
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()

    def query(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        return self.connection().execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple | list = ()) -> sqlite3.Row | None:
        return self.connection().execute(sql, params).fetchone()

    def version(self) -> int:
        row = self.one("SELECT version FROM schema_version")
        return int(row["version"]) if row else 0

    def migrate(self) -> None:
        with self.transaction() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = cur.execute("SELECT version FROM schema_version").fetchone()
            current = int(row[0]) if row else 0
            for script in MIGRATIONS[current:]:
                for statement in filter(str.strip, script.split(";")):
                    cur.execute(statement)
            if row is None:
                cur.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS),))
            else:
                cur.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

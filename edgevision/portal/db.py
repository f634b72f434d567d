"""The portal's database, in plain SQL kept portable, versioned by MIGRATIONS so a newer portal upgrades an
older database in place. Two backends behind the same three calls (`query`, `one`, `transaction`):

- SQLite (the default): `<data>/portal.db`, WAL, synchronous=FULL.
- PostgreSQL: `PORTAL_DATABASE_URL=postgresql://...` (psycopg 3, the `portal-postgres` extra).

What differs between them is in this file only: `?` placeholders (rewritten to `%s` for psycopg), one writer at
a time (SQLite's `BEGIN IMMEDIATE`; on PostgreSQL a transaction-scoped advisory lock, so the read-check-write
transactions of the service stay as safe as on SQLite), rows that answer by name and by position, and text with
a NUL character (PostgreSQL cannot store it; refused on both). The SQL itself has no SQLite-only forms (no
AUTOINCREMENT, rowid, INSERT OR IGNORE, datetime functions or BLOBs; `ON CONFLICT` as both write it), and no
query orders by user text, so the server's collation does not matter.

One connection per thread; a transaction is `with db.transaction() as cur:`, committed on success.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from edgevision.portal.errors import PortalError

POSTGRES_SCHEMES = {"postgresql", "postgres"}
# The key of the advisory lock every PostgreSQL write transaction takes first (one writer at a time).
WRITER_LOCK = zlib.crc32(b"edgevision-portal-writer")
Params = Sequence[Any]
T = TypeVar("T")


class DatabaseError(PortalError):
    """The database cannot be opened or prepared: a bad PORTAL_DATABASE_URL, a server that refuses, no driver."""


class UnstorableValue(ValueError):
    """A value no backend may store (text with a NUL character); the API answers 400."""


# Column types are TEXT, INTEGER and DOUBLE PRECISION only: the same values in SQLite and PostgreSQL. (Migration 1
# once said VARCHAR(n), CHAR(64) and REAL; SQLite never enforced those lengths and gives both spellings the same
# affinity, so existing files are unchanged, while PostgreSQL would have refused long values and kept REAL in
# single precision.) Names' lengths are checked by the API, as they always were.
MIGRATIONS: list[str] = [
    # 1: projects, tags, images (content stored once per hash), tagging, iterations and their image snapshot,
    # exports, stored predictions.
    """
    CREATE TABLE projects (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        domain_id TEXT NOT NULL,
        classification_type TEXT NOT NULL,
        target_export_platforms TEXT NOT NULL,
        created TEXT NOT NULL,
        last_modified TEXT NOT NULL
    );
    CREATE TABLE tags (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        type TEXT NOT NULL,
        created TEXT NOT NULL,
        UNIQUE (project_id, name)
    );
    CREATE TABLE blobs (
        sha256 TEXT PRIMARY KEY,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL,
        format TEXT NOT NULL
    );
    CREATE TABLE images (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL REFERENCES blobs(sha256),
        created TEXT NOT NULL,
        metadata TEXT NOT NULL,
        UNIQUE (project_id, sha256)
    );
    CREATE INDEX images_by_date ON images (project_id, created, id);
    CREATE TABLE image_tags (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        tag_id TEXT NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
        created TEXT NOT NULL,
        PRIMARY KEY (image_id, tag_id)
    );
    CREATE INDEX image_tags_by_tag ON image_tags (tag_id, image_id);
    CREATE TABLE iterations (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        created TEXT NOT NULL,
        last_modified TEXT NOT NULL,
        trained_at TEXT,
        domain_id TEXT NOT NULL,
        classification_type TEXT NOT NULL,
        training_type TEXT NOT NULL,
        reserved_budget_in_hours INTEGER NOT NULL,
        training_seconds DOUBLE PRECISION,
        publish_name TEXT,
        prediction_resource_id TEXT,
        error TEXT,
        number INTEGER,
        fingerprint TEXT NOT NULL,
        labels TEXT,
        UNIQUE (project_id, name)
    );
    CREATE TABLE iteration_images (
        iteration_id TEXT NOT NULL REFERENCES iterations(id) ON DELETE CASCADE,
        image_id TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        created TEXT NOT NULL,
        tag_ids TEXT NOT NULL,
        probabilities TEXT,
        PRIMARY KEY (iteration_id, image_id)
    );
    CREATE TABLE exports (
        iteration_id TEXT NOT NULL REFERENCES iterations(id) ON DELETE CASCADE,
        platform TEXT NOT NULL,
        flavor TEXT NOT NULL,
        status TEXT NOT NULL,
        file_name TEXT,
        created TEXT NOT NULL,
        PRIMARY KEY (iteration_id, platform, flavor)
    );
    CREATE TABLE predictions (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        iteration_id TEXT,
        sha256 TEXT NOT NULL REFERENCES blobs(sha256),
        created TEXT NOT NULL,
        application TEXT,
        source TEXT NOT NULL,
        source_key TEXT UNIQUE,
        predictions TEXT NOT NULL
    );
    CREATE INDEX predictions_by_date ON predictions (project_id, created, id);
    """,
]


class Row(Protocol):
    """A row of either backend (sqlite3.Row, PostgresRow): by column name or position."""

    def __getitem__(self, key: str | int, /) -> Any: ...


class Cursor:
    """The cursor a transaction yields: `execute` takes `?` placeholders on every backend and returns itself."""

    def __init__(self, raw: Any, translate: Callable[[str], str]) -> None:
        self._raw = raw
        self._translate = translate

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        self._raw.execute(self._translate(sql), _checked(params))
        return self

    def fetchone(self) -> Row | None:
        return self._raw.fetchone()

    def fetchall(self) -> list[Row]:
        return self._raw.fetchall()

    def __iter__(self) -> Iterator[Row]:
        return iter(self._raw)


class Database:
    """The schema at the newest version, one connection per thread; safe to share between threads and processes.
    Subclasses connect, begin a write transaction and name the driver's errors."""

    driver_error: type[Exception] = Exception
    shown = ""  # where the data is, for messages (a URL without its password)

    def __init__(self) -> None:
        self._local = threading.local()
        try:
            self.migrate()
        except self.driver_error as exc:
            raise DatabaseError(f"{self.shown}: cannot prepare the schema: {_first_line(exc)}") from None

    def _connect(self) -> Any:
        raise NotImplementedError

    def _usable(self, conn: Any) -> bool:
        return True

    def _translate(self, sql: str) -> str:
        return sql

    def _write(self, conn: Any) -> AbstractContextManager[Any]:
        """A write transaction on `conn` that waits for other writers first; yields the driver's cursor."""
        raise NotImplementedError

    def connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or not self._usable(conn):
            conn = self._local.conn = self._connect()
        return conn

    def _retrying(self, action: Callable[[Any], T]) -> T:
        """`action(connection)`, once more on a new connection if the server dropped the old one (a restart).
        Only reads and the start of a transaction go through here: nothing has been written when they fail."""
        try:
            return action(self.connection())
        except self.driver_error:
            conn = getattr(self._local, "conn", None)
            if conn is None or self._usable(conn):
                raise
            return action(self.connection())

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with ExitStack() as stack:
            raw = self._retrying(lambda conn: stack.enter_context(self._write(conn)))
            yield Cursor(raw, self._translate)

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        return self._retrying(lambda conn: Cursor(conn.cursor(), self._translate).execute(sql, params).fetchall())

    def one(self, sql: str, params: Params = ()) -> Row | None:
        return self._retrying(lambda conn: Cursor(conn.cursor(), self._translate).execute(sql, params).fetchone())

    def version(self) -> int:
        row = self.one("SELECT version FROM schema_version")
        return int(row["version"]) if row else 0

    def migrate(self) -> None:
        with self.transaction() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = cur.execute("SELECT version FROM schema_version").fetchone()
            current = int(row["version"]) if row else 0
            if current > len(MIGRATIONS):
                raise DatabaseError(
                    f"{self.shown}: schema version {current} is newer than this portal's ({len(MIGRATIONS)});"
                    " run the newer portal"
                )
            if current == len(MIGRATIONS):
                return
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


class SqliteDatabase(Database):
    """A SQLite file (WAL, synchronous=FULL): the embedded default."""

    driver_error = sqlite3.Error

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shown = str(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a kill -9 or power cut keeps every committed row
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @contextmanager
    def _write(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")  # writers queue here instead of failing half-way with "locked"
        try:
            yield cur
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()


class PostgresDatabase(Database):
    """A PostgreSQL database named by a `postgresql://` URL (libpq's: PGPASSWORD and ~/.pgpass work too)."""

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise DatabaseError(
                "PORTAL_DATABASE_URL is a PostgreSQL URL but psycopg is not installed:"
                " pip install 'edgevision[portal-postgres]'"
            ) from None
        self._psycopg = psycopg
        self.driver_error = psycopg.Error
        self.url = url
        self.shown = redacted(url)
        super().__init__()

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.url, autocommit=True, row_factory=_named_rows, connect_timeout=10)
        except self._psycopg.Error as exc:
            raise DatabaseError(f"cannot connect to {self.shown}: {_first_line(exc)}") from None

    def _usable(self, conn: Any) -> bool:
        return not (conn.closed or conn.broken)  # a restarted server: the next call reconnects

    def _translate(self, sql: str) -> str:
        return _format_placeholders(sql)

    @contextmanager
    def _write(self, conn: Any) -> Iterator[Any]:
        with conn.transaction():
            cur = conn.cursor()
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))  # writers queue here, as in SQLite
            yield cur


class PostgresRow(tuple):
    """A PostgreSQL row that answers like sqlite3.Row: by position and by column name."""

    names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        return super().__getitem__(self.names[key] if isinstance(key, str) else key)

    def keys(self) -> list[str]:
        return list(self.names)


def _named_rows(cursor: Any) -> Callable[[Sequence[Any]], PostgresRow]:
    names = {column.name: i for i, column in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> PostgresRow:
        row = PostgresRow(values)
        row.names = names
        return row

    return make


def open_database(url: str | None, data_dir: Path) -> Database:
    """PostgreSQL for a `postgresql://` URL, else SQLite in `data_dir`; raises DatabaseError."""
    if not url:
        return SqliteDatabase(data_dir / "portal.db")
    if urlsplit(url).scheme.lower() not in POSTGRES_SCHEMES:
        raise DatabaseError(
            f"PORTAL_DATABASE_URL {redacted(url)!r}: give a postgresql://user@host:port/database URL,"
            " or leave it unset for SQLite in the data folder"
        )
    return PostgresDatabase(url)


def redacted(url: str) -> str:
    """`url` with its password (user:password@ or ?password=) replaced by ***."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            host = parts.netloc.rsplit("@", 1)[1]
            parts = parts._replace(netloc=f"{parts.username}:***@{host}")
    except ValueError:  # not even a URL (a bad port): show only its scheme
        return url.split(":", 1)[0] + ":..."
    return urlunsplit(parts._replace(query=re.sub(r"(^|&)(password=)[^&]*", r"\1\2***", parts.query)))


@lru_cache(maxsize=512)
def _format_placeholders(sql: str) -> str:
    """`?` to psycopg's `%s` (a literal `%` doubled). The portal's SQL has no `?` or `%` inside string literals."""
    return sql.replace("%", "%%").replace("?", "%s")


def _checked(params: Params) -> Params:
    for value in params:
        if isinstance(value, str) and "\x00" in value:
            raise UnstorableValue("text with a NUL character cannot be stored")
    return params


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]

"""`edgevision portal --copy-to TARGET`: the portal's rows copied into another, empty database, e.g. a device's
SQLite file into the PostgreSQL server a team shares. Images, iteration models and exports are files in the
data folder and stay where they are: run the portal on the same folder with `--database TARGET` afterwards.

The copy reads inside a write transaction of the source (a running portal's writes wait until it is done, so
the copy is one consistent state) and writes in one transaction of the target: a failure leaves it empty.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from edgevision.portal.db import POSTGRES_SCHEMES, Database, DatabaseError, PostgresDatabase, SqliteDatabase

# Parents before children (the foreign keys), as migration 1 creates them.
TABLES = (
    *("projects", "tags", "blobs", "images", "image_tags"),
    *("iterations", "iteration_images", "exports", "predictions"),
)


def open_target(target: str) -> Database:
    """A postgresql:// URL, or the path of a SQLite file."""
    if urlsplit(target).scheme.lower() in POSTGRES_SCHEMES:
        return PostgresDatabase(target)
    return SqliteDatabase(Path(target))


def copy_rows(source: Database, target: Database) -> dict[str, int]:
    """Every row of `source` into the empty `target` (same schema version); the number of rows per table."""
    if source.version() != target.version():
        raise DatabaseError(
            f"{target.shown} has schema version {target.version()}, {source.shown} {source.version()}: use one portal"
        )
    copied: dict[str, int] = {}
    with source.transaction() as read, target.transaction() as write:
        for table in TABLES:
            if write.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                raise DatabaseError(f"{target.shown} is not empty (table {table} has rows): copy into a new database")
        for table in TABLES:
            rows = read.execute(f"SELECT * FROM {table}").fetchall()
            if rows:
                columns = list(rows[0].keys())
                insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                for row in rows:
                    write.execute(insert, tuple(row[column] for column in columns))
            copied[table] = len(rows)
    return copied

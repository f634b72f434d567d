"""The upload journal: which captures still have to reach Blob Storage, kept in sqlite beside the captures.

`CAPTURE_DIR/.uploads.sqlite` (WAL, synchronous=FULL: a committed change survives kill -9 and a power cut).
One row per capture not yet uploaded or uploaded but still on disk; a row goes when its capture is deleted.
Totals (uploaded, failed, dropped) are kept in the same file so they count across restarts.

The journal is the only record of "uploaded": a capture is marked only after the store has confirmed both of
its blobs, so a kill between the upload and the mark costs one conditional re-upload that the store refuses
(the blob is already there with the same content), never a lost or a doubled frame.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from edgevision.errors import EdgeVisionError

JOURNAL_NAME = ".uploads.sqlite"  # hidden: the capture store ignores it
TOTALS = ("uploaded", "failed", "dropped", "uploaded_bytes")

SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    path TEXT PRIMARY KEY,          -- the JPEG, relative to CAPTURE_DIR (YYYY-MM-DD/<name>.jpg)
    captured_at TEXT NOT NULL,      -- ISO 8601 UTC: uploads go oldest first
    state TEXT NOT NULL CHECK (state IN ('queued', 'uploaded')),
    attempts INTEGER NOT NULL DEFAULT 0,  -- failures caused by this capture (not by an unreachable store)
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_queue ON uploads (state, attempts, captured_at);
CREATE TABLE IF NOT EXISTS totals (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class JournalError(EdgeVisionError):
    """The journal file cannot be opened or is not an upload journal."""


@dataclass(frozen=True)
class Entry:
    path: str
    captured_at: datetime
    attempts: int


class UploadJournal:
    """Thread-safe: the capture writer adds, the uploader takes and marks, the frame loop reads counts."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / JOURNAL_NAME
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"cannot use the upload journal {self.path}: {exc}") from None
        self._pending = {row[0] for row in self._db.execute("SELECT path FROM uploads WHERE state = 'queued'")}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- changes ---------------------------------------------------------------------------------------

    def add(self, entries: Iterable[tuple[str, datetime]]) -> int:
        """Queue captures not yet journaled (a capture already known keeps its state); returns how many."""
        now = _now()
        rows = [(path, _iso(when), now) for path, when in entries]
        with self._lock, self._db:
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO uploads (path, captured_at, state, updated_at) VALUES (?, ?, 'queued', ?)",
                rows,
            )
            added = self._db.total_changes - before
            self._pending |= self._queued_paths([path for path, _, _ in rows])
        return added

    def uploaded(self, path: str, size: int) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE uploads SET state = 'uploaded', updated_at = ? WHERE path = ?", (_now(), path))
            self._bump("uploaded", 1)
            self._bump("uploaded_bytes", size)
            self._pending.discard(path)

    def failed(self, path: str | None) -> None:
        """One failed attempt; `path` when the capture itself was the problem (it then goes to the back)."""
        with self._lock, self._db:
            if path is not None:
                self._db.execute(
                    "UPDATE uploads SET attempts = attempts + 1, updated_at = ? WHERE path = ?", (_now(), path)
                )
            self._bump("failed", 1)

    def forget(self, paths: Iterable[str]) -> int:
        """Captures deleted from disk: their rows go; returns how many were still queued (dropped)."""
        paths = list(paths)
        with self._lock, self._db:
            dropped = len(self._queued_paths(paths))
            self._db.executemany("DELETE FROM uploads WHERE path = ?", [(p,) for p in paths])
            if dropped:
                self._bump("dropped", dropped)
            self._pending.difference_update(paths)
        return dropped

    # -- reading ---------------------------------------------------------------------------------------

    def pending(self, path: str) -> bool:
        """Whether the capture at `path` still waits for its upload (cheap: an in-memory set)."""
        with self._lock:
            return path in self._pending

    def next(self) -> Entry | None:
        """The capture to upload now: fewest failed attempts, then oldest."""
        with self._lock:
            row = self._db.execute(
                "SELECT path, captured_at, attempts FROM uploads WHERE state = 'queued'"
                " ORDER BY attempts, captured_at LIMIT 1"
            ).fetchone()
        return Entry(row[0], datetime.fromisoformat(row[1]), row[2]) if row else None

    def counts(self) -> dict[str, int]:
        with self._lock:
            totals = dict(self._db.execute("SELECT name, value FROM totals").fetchall())
            queued = self._db.execute("SELECT count(*) FROM uploads WHERE state = 'queued'").fetchone()[0]
        return {"queued": queued, **{name: int(totals.get(name, 0)) for name in TOTALS}}

    def paths(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT path FROM uploads")}

    def _queued_paths(self, paths: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(paths), 500):  # sqlite's limit on bound parameters
            chunk = paths[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT path FROM uploads WHERE state = 'queued' AND path IN ({marks})"
            found.update(row[0] for row in self._db.execute(query, chunk))
        return found

    def _bump(self, name: str, by: int) -> None:
        self._db.execute(
            "INSERT INTO totals (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
            (name, by, by),
        )


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()

"""Stored frames: original-resolution JPEGs with a sidecar JSON, written atomically, pruned oldest first.

Layout: `CAPTURE_DIR/YYYY-MM-DD/<UTC time>_<frame>_<tag>.jpg` + the same name with `.json`.

The invariant a kill -9 at any moment keeps: a capture is a `.jpg`; every `.jpg` is complete and its sidecar
exists. Both are written to a hidden temp file, fsynced and renamed into place, the sidecar first and the JPEG
last; deletion goes the other way round. What a kill can leave behind is a hidden `.*.tmp` file or a sidecar
without its JPEG, neither of which is a capture; the next start removes them.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from edgevision.contracts import CAPTURE_FILE_NAME, CAPTURE_TIME_FORMAT, CaptureSidecar, dumps
from edgevision.files import is_temp_file, write_atomic

log = logging.getLogger(__name__)

MB = 1024 * 1024
TIME_FORMAT = CAPTURE_TIME_FORMAT
NAME = CAPTURE_FILE_NAME


@dataclass(frozen=True, order=True)
class Capture:
    """One stored frame, ordered by capture time."""

    captured_at: datetime
    jpeg: Path
    size: int  # JPEG + sidecar, bytes

    @property
    def sidecar(self) -> Path:
        return self.jpeg.with_suffix(".json")


class CaptureStore:
    """The capture folder, with retention by total size and by age (0 = no limit)."""

    def __init__(self, root: Path, *, max_mb: float = 0.0, max_age_days: float = 0.0, hard_max_mb: float = 0.0) -> None:
        self.root = Path(root)
        self.set_limits(max_mb=max_mb, max_age_days=max_age_days, hard_max_mb=hard_max_mb)
        self._lock = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True)
        self._captures: list[Capture] = self._scan()
        self.total_bytes = sum(c.size for c in self._captures)

    def set_limits(self, *, max_mb: float, max_age_days: float, hard_max_mb: float = 0.0) -> None:
        self.max_bytes = int(max_mb * MB)
        self.max_age = timedelta(days=max_age_days) if max_age_days else None
        self.hard_max_bytes = int(hard_max_mb * MB)

    def __len__(self) -> int:
        return len(self._captures)

    def captures(self) -> list[Capture]:
        """Every capture, oldest first."""
        with self._lock:
            return list(self._captures)

    def save(self, jpeg: bytes, sidecar: CaptureSidecar, *, captured_at: datetime, frame: int, tag: str) -> Capture:
        """Store one frame atomically (sidecar, then JPEG); returns it. Retention is up to `prune`."""
        when = captured_at.astimezone(timezone.utc)
        folder = self.root / when.strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{when.strftime(TIME_FORMAT)}_{frame:06d}_{_slug(tag)}"
        target = folder / f"{stem}.jpg"
        record = sidecar.model_copy(update={"file": target.name})
        text = dumps(record, indent=1, ensure_ascii=False).encode("utf-8")
        write_atomic(target.with_suffix(".json"), text, durable=True)
        try:
            write_atomic(target, jpeg, durable=True)
        except OSError:  # e.g. the disk filled up between the two: no sidecar without its JPEG
            target.with_suffix(".json").unlink(missing_ok=True)
            raise
        capture = Capture(when, target, len(jpeg) + len(text))
        with self._lock:
            bisect.insort(self._captures, capture)
            self.total_bytes += capture.size
        return capture

    def prune(self, now: datetime | None = None, *, pending: Callable[[Capture], bool] | None = None) -> list[Capture]:
        """Delete captures past the age limit, then the oldest until the size limit holds; returns them.

        `pending` (uploads on) protects captures not yet uploaded from both limits; only the hard size limit
        deletes them, oldest first, once the folder is over it."""
        now = now or datetime.now(timezone.utc)
        removed: list[Capture] = []
        with self._lock:
            kept: list[Capture] = []
            for index, capture in enumerate(self._captures):
                if not self._over_limit(capture, now):  # sorted by time: the newer ones are within too
                    kept += self._captures[index:]
                    break
                if pending is not None and pending(capture):
                    kept.append(capture)
                else:
                    self.total_bytes -= capture.size
                    removed.append(capture)
            while kept and self.hard_max_bytes and self.total_bytes > self.hard_max_bytes:
                capture = kept.pop(0)
                self.total_bytes -= capture.size
                removed.append(capture)
            self._captures = kept
        for capture in removed:
            _delete(capture)
        return removed

    def _over_limit(self, oldest: Capture, now: datetime) -> bool:
        if self.max_age is not None and oldest.captured_at < now - self.max_age:
            return True
        return bool(self.max_bytes) and self.total_bytes > self.max_bytes

    def _scan(self) -> list[Capture]:
        """Index what is on disk and clear what a kill left behind (temp files, sidecars without JPEG)."""
        captures = []
        for path in self.root.rglob("*"):
            if not path.is_file():
                continue
            if is_temp_file(path):
                log.info("removing %s left by an interrupted write", path)
                path.unlink(missing_ok=True)
            elif path.suffix == ".json" and NAME.match(path.with_suffix(".jpg").name):
                if not path.with_suffix(".jpg").exists():
                    log.info("removing %s whose JPEG was never completed", path)
                    path.unlink(missing_ok=True)
            elif match := NAME.match(path.name):
                when = datetime.strptime(match.group(1), TIME_FORMAT).replace(tzinfo=timezone.utc)
                sidecar = path.with_suffix(".json")
                size = path.stat().st_size + (sidecar.stat().st_size if sidecar.exists() else 0)
                captures.append(Capture(when, path, size))
        return sorted(captures)


def _delete(capture: Capture) -> None:
    capture.jpeg.unlink(missing_ok=True)  # JPEG first: a kill in between leaves an orphan sidecar, not a capture
    capture.sidecar.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        capture.jpeg.parent.rmdir()  # only succeeds once the day's folder is empty


def _slug(tag: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", tag).strip("-").lower()[:40] or "tag"

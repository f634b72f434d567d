"""Keeping captures: which scored frames to keep (threshold, tags, cooldown) and storing them off the frame loop.

The frame loop calls `offer` for every scored frame; the frames chosen wait in a small queue for the writer
thread, because a slow disk (an SD card's fsync) must not stall scoring. A disk that fails (full, read-only)
costs the captures it cannot take, counted, and the keeper goes on when space returns.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edgevision.capture import reporting
from edgevision.capture.frames import Prepared
from edgevision.capture.scorer import Scored
from edgevision.capture.settings import CaptureSettings
from edgevision.capture.store import Capture, CaptureStore
from edgevision.contracts import CaptureSidecar, as_prediction

log = logging.getLogger("edgevision.capture")

QUEUE_SIZE = 32  # frames waiting for the disk; the loop blocks only when the disk is this far behind


@dataclass
class KeeperCounters:
    captures: int = 0  # frames stored
    cooldown_skips: int = 0  # matching frames not stored because of CAPTURE_COOLDOWN
    storage_skips: int = 0  # matching frames lost to a failing disk (full, read-only)
    pruned: int = 0  # captures deleted by retention (uploaded ones, or any with uploads off)


StoredHandler = Callable[[CaptureStore, Capture, CaptureSidecar], None]


class Retention(Protocol):
    """What retention asks the uploader: which captures must wait for their upload, and what went anyway."""

    def pending(self, store: CaptureStore) -> Callable[[Capture], bool] | None: ...

    def forget(self, store: CaptureStore, removed: list[Capture]) -> int: ...


Job = tuple[CaptureStore, Prepared, CaptureSidecar, str]


class CaptureKeeper:
    """Chooses and stores captures; `on_stored` runs on the writer thread after each capture is on disk."""

    def __init__(self, on_stored: StoredHandler, retention: Retention | None = None) -> None:
        self.counters = KeeperCounters()
        self.retention = retention
        self.store: CaptureStore | None = None
        self.storage_error = ""  # the disk's last failure, "" once captures are stored again
        self._on_stored = on_stored
        self._cooldowns: dict[str, float] = {}
        self._jobs: queue.Queue[Job | None] = queue.Queue(QUEUE_SIZE)
        self._writer = threading.Thread(target=self._write_loop, name="capture-writer", daemon=True)

    def start(self) -> None:
        self._writer.start()

    def close(self) -> None:
        """Store every frame already chosen, then stop the writer."""
        if self._writer.is_alive():
            self._jobs.put(None)
            self._writer.join()

    def drain(self) -> None:
        """Wait until the writer has stored everything queued (before the store changes under it)."""
        self._jobs.join()

    def open_store(self, settings: CaptureSettings) -> CaptureStore | None:
        """Open (or close, without CAPTURE_TAGS) the capture folder; applies retention at once."""
        self.drain()  # a second store scanning the folder would take a write in progress for a crash's leftover
        if not settings.capture_tags:
            self.store = None
            return None
        self.store = CaptureStore(settings.capture_dir, **_limits(settings))
        return self.store

    def set_limits(self, settings: CaptureSettings) -> None:
        if self.store is not None:
            self.drain()
            self.store.set_limits(**_limits(settings))
            self.prune(self.store)

    def prune(self, store: CaptureStore) -> None:
        """Apply retention; captures still waiting for their upload go only past the hard limit."""
        pending = self.retention.pending(store) if self.retention is not None else None
        removed = store.prune(pending=pending)
        dropped = self.retention.forget(store, removed) if self.retention is not None else 0
        self.counters.pruned += len(removed) - dropped

    def offer(self, item: Prepared, scored: Scored, source: str, settings: CaptureSettings) -> bool:
        """Queue the frame for storing when one of its tags matters and that tag is not cooling down."""
        if self.store is None:
            return False
        matched = None
        for entry in scored.ranked:
            if entry["probability"] < settings.capture_threshold:
                break  # ranked, highest first: none of the rest counts either
            if settings.captures(entry["tagName"]):
                matched = as_prediction(entry)
                break
        if matched is None:
            return False
        key = matched.tagName.lower()
        last = self._cooldowns.get(key)
        now = item.frame.timestamp
        if last is not None and 0 <= now - last < settings.capture_cooldown:
            self.counters.cooldown_skips += 1
            return False
        self._cooldowns[key] = now
        record = reporting.sidecar(scored, item.frame, source, matched, settings)
        self._jobs.put((self.store, item, record, key))
        return True

    def _write_loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._write(*job)
            except Exception:  # a bug here must not end the writer: later captures would queue up forever
                log.exception("storing a capture failed")
            finally:
                self._jobs.task_done()
        self._jobs.task_done()

    def _write(self, store: CaptureStore, item: Prepared, record: CaptureSidecar, key: str) -> None:
        try:
            capture = store.save(
                item.original_jpeg(), record, captured_at=item.frame.captured_at, frame=item.frame.index, tag=key
            )
        except OSError as exc:  # a full or read-only disk must not stop scoring and reporting
            self.counters.storage_skips += 1
            message = f"cannot store a capture in {store.root}: {exc.strerror or exc}"
            if message != self.storage_error:  # once per change of state, not once per frame
                log.warning("%s (capture skipped; retrying with the next one)", message)
            self.storage_error = message
            return
        if self.storage_error:
            log.info("storing captures again after %d skipped", self.counters.storage_skips)
            self.storage_error = ""
        self.counters.captures += 1
        self._on_stored(store, capture, record)  # journals it for upload before retention looks at it
        self.prune(store)


def _limits(settings: CaptureSettings) -> dict[str, float]:
    return {
        "max_mb": settings.capture_max_mb,
        "max_age_days": settings.capture_max_age_days,
        "hard_max_mb": settings.capture_hard_max_mb,
    }

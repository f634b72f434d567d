"""Store and forward: every kept frame and its sidecar go to Blob Storage (the IoT Edge blob module), once.

The uploader is its own thread: a blob store that is down, unreachable or refusing the key costs uploads, never
frames. What is still to upload is in the journal (`journal.py`), so restarts, outages and kill -9 lose nothing.

Blob names: `<device>/<YYYY-MM-DD>/<capture name>.jpg` and `.json` in BLOB_CONTAINER, where <device> is
BLOB_PREFIX or else the IoT Edge device id. Each blob carries the sidecar's fields as metadata (plus its
SHA-256), so the office can search blobs without opening sidecars. Each blob is written with If-None-Match: *,
so a retry after a lost answer (or a kill) never writes a frame twice: the store refuses it, and the uploader
checks the blob there is the same content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from edgevision.backoff import Backoff
from edgevision.capture.journal import JournalError, UploadJournal
from edgevision.capture.settings import CaptureSettings
from edgevision.capture.store import Capture, CaptureStore
from edgevision.contracts import CaptureSidecar, ContractError, parse
from edgevision.errors import EdgeVisionError

log = logging.getLogger("edgevision.capture")
logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every request at INFO

# The newest REST version the IoT Edge blob module accepts; the SDK's default is years newer.
API_VERSION = "2019-07-07"
METADATA_LIMIT = 7 * 1024  # the service allows 8 KiB of metadata per blob
IDLE_WAIT = 1.0
STOP_WAIT = 3.0  # seconds an upload in flight gets to finish at exit


class UploadError(EdgeVisionError):
    """An upload failed. `state` names what is wrong; `capture_fault` when this capture, not the store, is."""

    def __init__(self, message: str, state: str, *, capture_fault: bool = False) -> None:
        super().__init__(message)
        self.state = state
        self.capture_fault = capture_fault


class BlobTarget:
    """One container of one blob store, through the real SDK (azure-storage-blob v12) at API_VERSION."""

    def __init__(self, connection_string: str, container: str, timeout: float) -> None:
        from azure.storage.blob import BlobServiceClient

        try:
            service = BlobServiceClient.from_connection_string(
                connection_string,
                api_version=API_VERSION,
                retry_total=0,  # our backoff retries, without holding a frame's worth of requests in flight
                connection_timeout=min(timeout, 10.0),
                read_timeout=timeout,
            )
        except ValueError as exc:
            raise UploadError(f"BLOB_CONNECTION_STRING is not usable: {exc}", "misconfigured") from None
        self.account = service.account_name
        self.container = service.get_container_client(container)
        self._container_ready = False

    def put(self, name: str, data: bytes, metadata: dict[str, str], content_type: str) -> bool:
        """Write the blob unless it is there already with this content; True when this call wrote it."""
        from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError

        try:
            try:
                self._write(name, data, metadata, content_type, overwrite=False)
            except ResourceNotFoundError:  # the container is missing (a new store, or someone deleted it)
                self._create_container()
                self._write(name, data, metadata, content_type, overwrite=False)
            return True
        except ResourceExistsError:
            return self._settle_existing(name, data, metadata, content_type)
        except AzureError as exc:
            raise _classify(exc) from None
        except ValueError as exc:  # e.g. an account key that is not base64
            raise UploadError(f"BLOB_CONNECTION_STRING is not usable: {exc}", "misconfigured") from None

    def _write(self, name: str, data: bytes, metadata: dict[str, str], content_type: str, *, overwrite: bool) -> None:
        from azure.storage.blob import ContentSettings

        settings = ContentSettings(content_type=content_type, content_md5=bytearray(hashlib.md5(data).digest()))
        self.container.get_blob_client(name).upload_blob(
            data, overwrite=overwrite, metadata=metadata, content_settings=settings, length=len(data)
        )

    def _create_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):  # another uploader made it first
            self.container.create_container()

    def _settle_existing(self, name: str, data: bytes, metadata: dict[str, str], content_type: str) -> bool:
        """A blob of that name exists: ours from an attempt whose answer was lost, or a stale one to replace."""
        from azure.core.exceptions import AzureError

        try:
            properties = self.container.get_blob_client(name).get_blob_properties()
            if properties.size == len(data) and properties.metadata.get("sha256") == metadata["sha256"]:
                return False
            log.warning("blob %s exists with other content: replacing it with this device's capture", name)
            self._write(name, data, metadata, content_type, overwrite=True)
            return True
        except AzureError as exc:
            raise _classify(exc) from None


def _classify(exc: Exception) -> UploadError:
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return UploadError(f"blob store unreachable: {_first_line(exc)}", "unreachable")
    status = getattr(exc, "status_code", None) if isinstance(exc, HttpResponseError) else None
    code = getattr(exc, "error_code", None) or status
    if status in (401, 403):
        return UploadError(f"blob store refused the account key ({code})", "unauthorized")
    if status is not None and 400 <= status < 500 and status not in (408, 409, 429):
        return UploadError(f"blob store rejected the capture ({code}): {_first_line(exc)}", "error", capture_fault=True)
    return UploadError(f"blob store failed ({code}): {_first_line(exc)}", "unavailable")


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


class Throttle:
    """UPLOAD_MAX_BYTES_PER_SECOND: after sending n bytes, the next blob waits n / rate seconds. The rate is
    read at every check, so a twin change applies to the wait in progress."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last_at: float | None = None
        self._last_bytes = 0

    def delay(self, rate: float) -> float:
        """Seconds to wait before the next blob (0 = go)."""
        if not rate or self._last_at is None:
            return 0.0
        return max(0.0, self._last_at + self._last_bytes / rate - self._clock())

    def sent(self, nbytes: int) -> None:
        self._last_at, self._last_bytes = self._clock(), nbytes


def blob_names(prefix: str, relative: str) -> tuple[str, str]:
    """The JPEG's and the sidecar's blob names for a capture at `relative` (YYYY-MM-DD/<name>.jpg)."""
    stem = f"{prefix.strip('/')}/{relative}".removesuffix(".jpg")
    return f"{stem}.jpg", f"{stem}.json"


def blob_metadata(sidecar: bytes | None, jpeg: bytes) -> dict[str, str]:
    """The sidecar's fields as blob metadata (ASCII values: others are percent-encoded), plus the JPEG's SHA-256."""
    metadata = {"sha256": hashlib.sha256(jpeg).hexdigest()}
    if sidecar is None:
        metadata["sidecarError"] = "missing"
        return metadata
    try:
        record = parse(CaptureSidecar, sidecar)
    except ContractError as exc:  # a damaged or foreign sidecar: the frame still goes, said so
        metadata["sidecarError"] = _ascii(str(exc))[:500]
        return metadata
    fields = record.model_dump(mode="json")
    fields["predictions"] = [{"tagName": p.tagName, "probability": p.probability} for p in record.predictions]
    for name, value in fields.items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        metadata[name] = _ascii(text)
    if sum(len(k) + len(v) for k, v in metadata.items()) > METADATA_LIMIT:
        metadata["predictions"] = "[]"  # the full list is in the sidecar blob
    return metadata


def _ascii(text: str) -> str:
    return quote(text.strip(), safe=" !\"#$&'()*+,-./:;<=>?@[]^_`{|}~") if text else ""


def device_prefix(settings: CaptureSettings) -> str:
    return settings.blob_prefix or os.environ.get("IOTEDGE_DEVICEID") or socket.gethostname()


@dataclass
class UploadStatus:
    state: str = "off"  # off, starting, ok, unreachable, unauthorized, unavailable, misconfigured, error
    error: str = ""


class Uploader:
    """The upload thread. `open` binds it to a capture store; `enqueue` journals a new capture; `pending`
    tells retention what must not be deleted yet; `forget` is told what retention deleted anyway."""

    def __init__(self, settings: Callable[[], CaptureSettings]) -> None:
        self._settings = settings
        self.status = UploadStatus()
        self.journal: UploadJournal | None = None
        self._root: Path | None = None
        self._lock = threading.Lock()  # guards journal/_root; never held over the network (the loop may wait on it)
        self._retired: list[UploadJournal] = []  # swapped out while an upload may use them: closed between uploads
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._backoff = Backoff(settings().max_backoff)
        self._throttle = Throttle()
        self._target: tuple[tuple[str, str, float], BlobTarget] | None = None
        self._failures = 0  # in a row, for the "uploading again" line
        self._counts = {"queued": 0, "uploaded": 0, "failed": 0, "dropped": 0, "uploaded_bytes": 0}
        self._thread = threading.Thread(target=self._run, name="capture-uploader", daemon=True)

    @property
    def enabled(self) -> bool:
        return self._settings().blob_connection_string is not None

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def open(self, store: CaptureStore | None) -> None:
        """Use `store`'s journal (None: no uploads); journal every capture on disk it does not know yet."""
        with self._lock:
            if store is None or not self.enabled:
                self._retire_journal()
                self.status = UploadStatus("off", "")
                return
            if self._root != store.root:
                self._retire_journal()
                try:
                    self.journal = UploadJournal(store.root)
                except JournalError as exc:
                    log.error("%s: uploads are off", exc)
                    self.status = UploadStatus("misconfigured", str(exc))
                    return
                self._root = store.root
            journal = self.journal
            if self.status.state == "off":
                self.status = UploadStatus("starting", "")
        assert journal is not None
        on_disk = {self._relative(store, c): c.captured_at for c in store.captures()}
        vanished = journal.paths() - set(on_disk)
        added = journal.add(on_disk.items())
        dropped = journal.forget(vanished)  # deleted while we were not running: say so, count them
        if added or dropped:
            log.info("upload journal: %d captures added, %d gone from disk before their upload", added, dropped)
        self.wake()

    def enqueue(self, store: CaptureStore, capture: Capture) -> None:
        journal = self.journal
        if journal is not None and store.root == self._root:
            journal.add([(self._relative(store, capture), capture.captured_at)])
            self.wake()

    def pending(self, store: CaptureStore) -> Callable[[Capture], bool] | None:
        """For retention: whether a capture still waits for its upload (None when uploads are off)."""
        journal = self.journal
        if journal is None or store.root != self._root:
            return None
        return lambda capture: journal.pending(self._relative(store, capture))

    def forget(self, store: CaptureStore, removed: list[Capture]) -> int:
        """Retention deleted `removed`; returns how many had not been uploaded (dropped, logged)."""
        journal = self.journal
        if journal is None or not removed or store.root != self._root:
            return 0
        dropped = journal.forget(self._relative(store, c) for c in removed)
        if dropped:
            log.warning(
                "CAPTURE_HARD_MAX_MB reached: %d captures deleted before their upload (%d so far)",
                dropped,
                journal.counts()["dropped"],
            )
        return dropped

    def counts(self) -> dict[str, int]:
        """The journal's counts (after `close`: the last ones, for the final report)."""
        journal = self.journal
        if journal is not None:
            self._counts = journal.counts()
        return dict(self._counts)

    def close(self, drain: float) -> None:
        """Give the queue up to `drain` seconds while the store answers, then stop the thread."""
        deadline = time.monotonic() + drain
        while (
            self._thread.is_alive()
            and self.status.state in ("starting", "ok")
            and self.counts()["queued"]
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT)
        with self._lock:
            self.counts()
        if self._thread.is_alive():
            # A hung upload is abandoned, not waited for: the journal still lists its capture (committed
            # changes are durable without close), and the next start sends it again, refused if it got through.
            log.info("stopping with an upload in flight: it is retried at the next start")
            return
        with self._lock:
            self._retire_journal()
        self._close_retired()

    # -- the thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self._step()
            except Exception:  # a bug must not end uploads for good; the journal still has everything
                log.exception("upload step failed")
                delay = self._backoff.next()
            if delay:
                self._sleep(delay)

    def _step(self) -> float:
        """Upload the next capture; returns how long to wait before the next step."""
        settings = self._settings()
        self._backoff.maximum = settings.max_backoff
        self._close_retired()
        with self._lock:
            journal, root = self.journal, self._root
        if journal is None or root is None or settings.blob_connection_string is None:
            return IDLE_WAIT
        entry = journal.next()
        if entry is None:
            return IDLE_WAIT
        wait = self._throttle.delay(settings.upload_max_bytes_per_second)
        if wait:
            return min(wait, IDLE_WAIT)  # re-read the rate and the queue at least every second
        try:
            size = self._upload(root, entry.path, settings)
        except UploadError as exc:
            journal.failed(entry.path if exc.capture_fault else None)
            self._failed(exc)
            return self._backoff.next()
        except FileNotFoundError:  # deleted by hand since it was journaled
            journal.forget([entry.path])
            log.warning("capture %s vanished before its upload", entry.path)
            return 0.0
        journal.uploaded(entry.path, size)
        self._succeeded()
        self._backoff.reset()
        return 0.0

    def _upload(self, root: Path, relative: str, settings: CaptureSettings) -> int:
        jpeg_path = root / relative
        jpeg = jpeg_path.read_bytes()
        try:
            sidecar: bytes | None = jpeg_path.with_suffix(".json").read_bytes()
        except FileNotFoundError:
            sidecar = None
        metadata = blob_metadata(sidecar, jpeg)
        jpeg_name, sidecar_name = blob_names(device_prefix(settings), relative)
        target = self._target_for(settings)
        target.put(jpeg_name, jpeg, metadata, "image/jpeg")
        size = len(jpeg)
        if sidecar is not None:  # the sidecar blob last: once it is there, so is its frame
            target.put(sidecar_name, sidecar, metadata, "application/json")
            size += len(sidecar)
        self._throttle.sent(size)
        return size

    def _target_for(self, settings: CaptureSettings) -> BlobTarget:
        assert settings.blob_connection_string is not None
        key = (settings.blob_connection_string.get_secret_value(), settings.blob_container, settings.upload_timeout)
        if self._target is None or self._target[0] != key:
            self._target = (key, BlobTarget(*key))
        return self._target[1]

    def _failed(self, exc: UploadError) -> None:
        self._failures += 1
        # Once per change of state, however long the outage: the error text of one outage varies (aborted,
        # then refused), its state does not.
        if exc.state != self.status.state:
            log.warning("uploads failing: %s (retrying with backoff up to %g s)", exc, self._backoff.maximum)
        self.status = UploadStatus(exc.state, str(exc))

    def _succeeded(self) -> None:
        if self.status.state != "ok":
            if self._failures:
                log.info("uploading again after %d failed attempts", self._failures)
            self._failures = 0
            self.status = UploadStatus("ok", "")

    def _sleep(self, seconds: float) -> None:
        """Idle waits end early for a new capture or new settings; a backoff wait only for stop."""
        if self._backoff.attempts:
            self._stop.wait(seconds)
        elif self._wake.wait(seconds):
            self._wake.clear()

    def _retire_journal(self) -> None:
        """Caller holds the lock. The uploader may be using the journal right now: it is closed later."""
        if self.journal is not None:
            self._retired.append(self.journal)
        self.journal, self._root = None, None

    def _close_retired(self) -> None:
        """Uploader thread between uploads (or after it stopped): no upload uses a retired journal then."""
        with self._lock:
            retired, self._retired = self._retired, []
        for journal in retired:
            journal.close()

    @staticmethod
    def _relative(store: CaptureStore, capture: Capture) -> str:
        return capture.jpeg.relative_to(store.root).as_posix()


def describe(uploader: Uploader) -> dict[str, Any]:
    """The upload part of the camera's status: counters for /metrics and the twin, state and last error."""
    counts = uploader.counts()
    return {
        "stats": {f"upload_{name}": value for name, value in counts.items()},
        "state": uploader.status.state,
        "error": uploader.status.error,
    }

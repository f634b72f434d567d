"""The CameraCapture module: read frames, score them over HTTP, report through IoT Edge, keep what matters.

One frame loop on the main thread; around it a source reader (live sources) or a prefetcher (files), the hub's
sender thread and the viewer's server threads. Twin patches arrive on the SDK's thread and are applied by the
loop between frames, so a frame is always handled with one consistent set of settings.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgevision.backoff import Backoff
from edgevision.capture import reporting
from edgevision.capture.frames import FrameFeed, Prepared, open_feed
from edgevision.capture.keeper import CaptureKeeper
from edgevision.capture.scorer import Scored, ScorerClient, ScorerError
from edgevision.capture.settings import CaptureSettings
from edgevision.capture.sources import FrameSource, display_name, open_source
from edgevision.capture.store import Capture, CaptureStore
from edgevision.capture.uploads import Uploader, describe
from edgevision.capture.viewer import LiveView, ViewerServer, create_app, listen_host
from edgevision.config import ConfigError
from edgevision.contracts import CaptureEvent, CaptureSidecar, ContractError, iso_time, parse
from edgevision.errors import EdgeVisionError
from edgevision.hub import Hub

log = logging.getLogger("edgevision.capture")

SOURCE_FIELDS = ("video_path", "loop_video", "play_at_file_rate")
SCORER_FIELDS = ("image_processing_endpoint", "image_processing_params", "request_timeout", "prediction_key")
UPLOAD_FIELDS = {"blob_container", "blob_prefix", "upload_max_bytes_per_second", "upload_timeout"}
ERROR_LOG_EVERY = 30.0  # seconds between repeats of the same failure in the log


@dataclass
class Counters:
    frames: int = 0  # frames handled by the loop
    scored: int = 0
    errors: int = 0  # failed scorer requests
    sent: int = 0  # output1 messages
    source_failures: int = 0
    rejected: int = 0  # messages not matching their contract: scorer answers, stored sidecars


class CaptureModule:
    """Runs until the source ends (a file without LOOP_VIDEO) or `stop()`; returns the exit code."""

    def __init__(self, settings: CaptureSettings, hub: Hub) -> None:
        self.settings = settings
        self.hub = hub
        self.counters = Counters()
        self.view = LiveView()
        self.policy = reporting.SendPolicy()
        self.backoff = Backoff(settings.max_backoff)
        self.model_id = ""
        self.last_error = ""
        self._stop = threading.Event()
        self._wake = threading.Event()  # interrupts backoff waits: stop or new settings
        self._pending: CaptureSettings | None = None
        self._pending_lock = threading.Lock()
        self.uploader = Uploader(lambda: self.settings)
        self.keeper = CaptureKeeper(self._stored, self.uploader)
        self._source: FrameSource | None = None
        self._feed: FrameFeed | None = None
        self._scorer: ScorerClient | None = None
        self._viewer: ViewerServer | None = None
        self._started = time.monotonic()
        self._first_frame_at: float | None = None
        self._last_frame_at = 0.0
        self._next_report = 0.0
        self._next_slot = 0.0
        self._error_logged: tuple[str, float] = ("", 0.0)

    # -- lifecycle -------------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> int:
        env_settings = self.settings
        self._apply_twin_at_start()
        try:
            self._open_source(self.settings)  # a missing file stops us here, with one clear line
        except EdgeVisionError as exc:
            if self.settings.video_path == env_settings.video_path:
                raise
            # The twin named a source that does not exist: keep running on the manifest's.
            log.error("the twin's VIDEO_PATH is not used: %s", exc)
            self.hub.report({"settingsError": str(exc)})
            self.settings = self.settings.model_copy(update={"video_path": env_settings.video_path})
            self._open_source(self.settings)
        try:
            self._start_parts()
            self.hub.on_desired(self._on_desired)
            self._report(settings=True)
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _start_parts(self) -> None:
        settings = self.settings
        self.keeper.start()
        self.uploader.start()
        self._scorer = self._make_scorer(settings)
        if self._scorer is None:
            log.warning("IMAGE_PROCESSING_ENDPOINT is empty: frames are not scored, reported or captured")
        self._open_store(settings)
        if settings.show_video:
            self._start_viewer(settings)
        log.info(
            "capturing from %s to %s (send mode %s, capture tags %s)",
            self._source_name,
            settings.image_processing_endpoint or "nowhere",
            settings.send_mode.value,
            ",".join(settings.capture_tags) or "none",
        )

    def _shutdown(self) -> None:
        if self._feed is not None:
            self._feed.close()
        self.keeper.close()  # every frame already chosen is stored before we exit
        self.uploader.close(self.settings.upload_drain)  # and uploaded, while the store answers
        if self._scorer is not None:
            self._scorer.close()
        self._report(settings=False)
        if self._viewer is not None:
            self._viewer.close()
        elapsed = self._last_frame_at - (self._first_frame_at or self._last_frame_at)
        c = self.counters
        log.info(
            "capture finished: %d frames, %d scored, %d errors, %d captures in %.2f s (%.2f frames/s)",
            c.frames,
            c.scored,
            c.errors,
            self.keeper.counters.captures,
            elapsed,
            c.frames / elapsed if elapsed > 0 else 0.0,
        )

    # -- the frame loop --------------------------------------------------------------------------------

    def _loop(self) -> None:
        assert self._feed is not None
        while not self._stop.is_set():
            self._apply_pending()
            self._throttle()
            item = self._feed.next(timeout=0.5)
            if item is None:
                if self._feed.ended:
                    log.info("end of %s", self._source_name)
                    return
            else:
                self._handle(item)
            if time.monotonic() >= self._next_report:
                self._report(settings=False)

    def _handle(self, item: Prepared) -> None:
        started = time.perf_counter()
        if self._first_frame_at is None:
            self._first_frame_at = time.monotonic()
        self.counters.frames += 1
        scored = self._score(item)
        scored_at = time.perf_counter()
        tag, probability = None, None
        if scored is not None:
            top = scored.top
            tag, probability = (top.tagName, top.probability) if top else ("", 0.0)
            self._send(item, scored)
        sent_at = time.perf_counter()
        if scored is not None:
            self.keeper.offer(item, scored, self._source_name, self.settings)
        self.view.update(item.frame, tag, probability)  # a reference only: drawn when someone watches
        self._last_frame_at = time.monotonic()
        if self.settings.verbose:
            done = time.perf_counter()
            log.info(
                "frame %d: read %.1f ms, prepare %.1f ms, score %.1f ms, report %.1f ms, capture %.1f ms,"
                " loop %.1f ms: %s",
                item.frame.index,
                item.read_ms,
                item.prepare_ms,
                (scored_at - started) * 1000,
                (sent_at - scored_at) * 1000,
                (done - sent_at) * 1000,
                (done - started) * 1000,
                f"{tag} {probability:.1%}" if tag is not None and probability is not None else "not scored",
            )

    def _throttle(self) -> None:
        """FRAME_RATE: wait for the next slot before taking a frame (a live source then gives its newest)."""
        rate = self.settings.frame_rate
        if not rate:
            return
        now = time.monotonic()
        if self._next_slot > now:
            self._sleep(self._next_slot - now)
        self._next_slot = max(self._next_slot, time.monotonic() - 1.0 / rate) + 1.0 / rate

    def _score(self, item: Prepared) -> Scored | None:
        """Score the frame; on failure back off, then retry a file's frame (every frame of a file counts)
        or give up on a live one (by then a newer frame matters more)."""
        while self._scorer is not None and not self._stop.is_set():
            try:
                scored = self._scorer.score(item.jpeg)
            except ScorerError as exc:
                self.counters.errors += 1
                self.counters.rejected += exc.rejected
                delay = self.backoff.next()
                self._log_failure(f"scorer: {exc}", delay)
                self._sleep(delay)
                if self._stop.is_set() or not exc.transient or self._source_live or self._pending is not None:
                    return None
                continue
            if self.last_error:
                log.info("scorer answering again after %d failed requests", self.counters.errors)
                self.last_error = ""
                self._error_logged = ("", 0.0)
            self.backoff.reset()
            self.counters.scored += 1
            self.model_id = scored.model_id
            return scored
        return None

    def _send(self, item: Prepared, scored: Scored) -> None:
        body = reporting.result_body(scored, item.frame, self._source_name, self.settings)
        if self.policy.should_send(self.settings, body.topTag):
            reporting.send_result(self.hub, body)
            self.policy.sent(body.topTag)
            self.counters.sent += 1

    def _stored(self, store: CaptureStore, capture: Capture, record: CaptureSidecar) -> None:
        """Writer thread, after a capture is on disk: announce it and list it in the viewer."""
        self.uploader.enqueue(store, capture)
        relative = capture.jpeg.relative_to(store.root).as_posix()
        event = CaptureEvent.of(record, relative, capture.sidecar.relative_to(store.root).as_posix())
        reporting.send_capture(self.hub, event)
        self._list_capture(relative, record)

    def _sleep(self, seconds: float) -> None:
        """Wait, but wake up early for stop() or new settings."""
        if not self._stop.is_set() and self._wake.wait(seconds) and not self._stop.is_set():
            self._wake.clear()

    def _log_failure(self, message: str, delay: float) -> None:
        self.last_error = message
        previous, at = self._error_logged
        now = time.monotonic()
        if message != previous or now - at >= ERROR_LOG_EVERY:
            log.warning("%s (retrying in %.1f s; %d errors so far)", message, delay, self.counters.errors)
            self._error_logged = (message, now)
        elif self.settings.verbose:
            log.info("%s", message)

    # -- parts that settings can change ---------------------------------------------------------------

    @property
    def _source_name(self) -> str:
        return display_name(self.settings.video_path)

    @property
    def _source_live(self) -> bool:
        return self._source is None or self._source.live

    def _open_source(self, settings: CaptureSettings) -> None:
        source = open_source(
            settings.video_path,
            loop=settings.loop_video,
            paced=settings.play_at_file_rate,
            max_backoff=settings.max_backoff,
        )
        if self._feed is not None:
            self.counters.source_failures += getattr(self._source, "failures", 0)
            self._feed.close()
        self._source = source
        self._feed = open_feed(source, lambda: self.settings)

    @staticmethod
    def _make_scorer(settings: CaptureSettings) -> ScorerClient | None:
        if not settings.image_processing_endpoint:
            return None
        key = settings.prediction_key.get_secret_value() if settings.prediction_key else None
        return ScorerClient(
            settings.image_processing_endpoint,
            params=settings.image_processing_params,
            timeout=settings.request_timeout,
            prediction_key=key,
        )

    def _open_store(self, settings: CaptureSettings) -> None:
        store = self.keeper.open_store(settings)
        self.uploader.open(store)  # before retention, so that it spares what still has to go
        if store is not None:
            self.keeper.prune(store)
            for capture in store.captures()[-self.view.recent.maxlen :]:
                self._remember(store, capture.jpeg)

    def _remember(self, store: CaptureStore, jpeg: Path) -> None:
        try:
            record = parse(CaptureSidecar, jpeg.with_suffix(".json").read_bytes())
        except (OSError, ContractError) as exc:  # a foreign or damaged sidecar: just not listed in the viewer
            self.counters.rejected += 1
            log.warning("capture %s not listed: %s", jpeg.name, exc)
            return
        self._list_capture(jpeg.relative_to(store.root).as_posix(), record)

    def _list_capture(self, relative: str, record: CaptureSidecar) -> None:
        when = iso_time(record.capturedAt, "milliseconds")
        self.view.add_capture(f"/captures/{relative}", record.matchedTag, record.matchedProbability, when)

    def _change_store(self, new: CaptureSettings, changed: set[str]) -> None:
        if not new.capture_tags or self.keeper.store is None or "capture_dir" in changed:
            self._open_store(new)
        else:
            self.keeper.set_limits(new)

    def _start_viewer(self, settings: CaptureSettings) -> None:
        key = settings.viewer_key.get_secret_value() if settings.viewer_key else None
        app = create_app(self.view, self.status, lambda: self.settings.capture_dir, key=key)
        self._viewer = ViewerServer(app, listen_host(settings.viewer_host, key), settings.viewer_port)

    # -- twin ------------------------------------------------------------------------------------------

    def _apply_twin_at_start(self) -> None:
        desired = self.hub.desired()
        if not desired:
            return
        try:
            self.settings = self.settings.updated(desired)
            self.backoff.maximum = self.settings.max_backoff
            log.info("applied the module twin's desired properties")
        except ConfigError as exc:
            log.error("module twin desired properties ignored: %s", exc)
            self.hub.report({"settingsError": str(exc)})

    def _on_desired(self, patch: dict[str, Any]) -> None:
        """SDK thread: validate now (so the error is reported at once), apply between frames."""
        with self._pending_lock:
            base = self._pending or self.settings
            try:
                self._pending = base.updated(patch)
            except ConfigError as exc:
                log.error("desired properties rejected: %s", exc)
                self.hub.report({"settingsError": str(exc)})
                return
        self._wake.set()

    def _apply_pending(self) -> None:
        with self._pending_lock:
            new, self._pending = self._pending, None
        if new is None or new == self.settings:
            return
        old = self.settings
        changed = {f for f in type(new).model_fields if getattr(new, f) != getattr(old, f)}
        try:
            if changed & set(SOURCE_FIELDS):
                self._open_source(new)
        except EdgeVisionError as exc:  # e.g. a new VIDEO_PATH that does not exist: keep the old source
            log.error("new settings not applied: %s", exc)
            self.hub.report({"settingsError": str(exc)})
            return
        if changed & set(SCORER_FIELDS):
            if self._scorer is not None:
                self._scorer.close()
            self._scorer = self._make_scorer(new)
        if changed & {"capture_tags", "capture_dir", "capture_max_mb", "capture_max_age_days", "capture_hard_max_mb"}:
            self._change_store(new, changed)
        if changed & UPLOAD_FIELDS:
            self.uploader.wake()
        if "show_video" in changed:
            self._toggle_viewer(new)
        self.backoff.maximum = new.max_backoff
        self.settings = new
        log.info("settings changed: %s", ", ".join(sorted(changed)))
        self._report(settings=True, extra={"settingsError": None})

    def _toggle_viewer(self, settings: CaptureSettings) -> None:
        if settings.show_video and self._viewer is None:
            try:
                self._start_viewer(settings)
            except EdgeVisionError as exc:
                log.error("%s", exc)
        elif not settings.show_video and self._viewer is not None:
            self._viewer.close()
            self._viewer = None

    # -- reporting -------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Counters and state, for reported properties and the viewer."""
        uploads = describe(self.uploader)
        stats = {**asdict(self.counters), **asdict(self.keeper.counters), **uploads["stats"]}
        if isinstance(self._source, FrameSource):
            stats["source_failures"] += getattr(self._source, "failures", 0)
        stats["hub_dropped"] = self.hub.dropped
        running = (self._last_frame_at or time.monotonic()) - (self._first_frame_at or self._started)
        stats["fps"] = round(self.counters.frames / running, 2) if running > 0 else 0.0
        c, kept = self.counters, self.keeper.counters
        return {
            "source": self._source_name,
            "modelId": self.model_id,
            "lastError": self.last_error or self.keeper.storage_error,
            "stats": {_camel(k): v for k, v in stats.items()},
            "uploadState": uploads["state"],
            "uploadError": uploads["error"],
            "summary": f"{c.frames} frames, {c.scored} scored, {c.errors} errors, {kept.captures} captures",
        }

    def _report(self, *, settings: bool, extra: dict[str, Any] | None = None) -> None:
        status = self.status()
        properties: dict[str, Any] = {
            "stats": status["stats"],
            "modelId": status["modelId"],
            "lastError": status["lastError"],
            "uploadState": status["uploadState"],
            "uploadError": status["uploadError"],
        }
        if settings:
            properties.update(self.settings.reported())
        properties.update(extra or {})
        self.hub.report(properties)
        self._next_report = time.monotonic() + self.settings.report_interval


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)

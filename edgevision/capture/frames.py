"""Frames made ready for the scorer: grayscale / resize as configured, JPEG-encoded.

Video files read as fast as possible are prepared one frame ahead in a thread, so reading, decoding and
encoding the next frame overlaps the scorer's work on this one; live sources are prepared on demand from
the newest frame (preparing frames nobody will score would only cost a small device its CPU).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from edgevision.capture.settings import CaptureSettings
from edgevision.capture.sources import Frame, FrameSource


@dataclass
class Prepared:
    """A frame and the JPEG the scorer gets; `read_ms`/`prepare_ms` feed VERBOSE's per-stage timings."""

    frame: Frame
    jpeg: bytes
    transformed: bool  # the scorer's JPEG is not the original frame (gray or resized)
    quality: int
    read_ms: float = 0.0
    prepare_ms: float = 0.0
    _original: bytes | None = field(default=None, repr=False)

    def original_jpeg(self) -> bytes:
        """The frame at its own resolution and colours, as stored for a capture."""
        if not self.transformed:
            return self.jpeg
        if self._original is None:
            self._original = self.frame.jpeg or encode_jpeg(self.frame.pixels(), self.quality)
        return self._original


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the frame as JPEG")
    return data.tobytes()


def target_size(width: int, height: int, settings: CaptureSettings) -> tuple[int, int] | None:
    """The size frames are sent at, or None to keep them as they are."""
    want_w, want_h = settings.resize_width, settings.resize_height
    if not (want_w or want_h):
        return None
    if not settings.keep_aspect_ratio:
        size = (want_w or width, want_h or height)
    else:
        scales = [s for s in (want_w / width if want_w else 0, want_h / height if want_h else 0) if s]
        scale = min(min(scales), 1.0)  # fit inside the box; enlarging adds no detail
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return None if size == (width, height) else size


def prepare(frame: Frame, settings: CaptureSettings, read_ms: float = 0.0) -> Prepared:
    started = time.perf_counter()
    width, height = frame.size
    size = target_size(width, height, settings)
    gray = settings.convert_to_gray
    if frame.jpeg is not None and size is None and not gray:
        # The source's own JPEG goes out as it is: no decode, no re-encode, no generation loss.
        return Prepared(frame, frame.jpeg, False, settings.jpeg_quality, read_ms, 0.0)
    image = frame.pixels()
    if gray and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if size is not None:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    jpeg = encode_jpeg(image, settings.jpeg_quality)
    prepare_ms = (time.perf_counter() - started) * 1000
    return Prepared(frame, jpeg, image is not frame.image, settings.jpeg_quality, read_ms, prepare_ms)


class FrameFeed:
    """Prepared frames from a source. `next` returns None when nothing came within `timeout`; `ended` says
    whether that is for good (the end of a file that does not loop)."""

    def __init__(self, source: FrameSource, settings: Callable[[], CaptureSettings]) -> None:
        self.source = source
        self._settings = settings

    @property
    def ended(self) -> bool:
        return self.source.ended

    def next(self, timeout: float) -> Prepared | None:
        started = time.perf_counter()
        frame = self.source.read(timeout)
        if frame is None:
            return None
        return prepare(frame, self._settings(), (time.perf_counter() - started) * 1000)

    def close(self) -> None:
        self.source.close()


class PrefetchFeed(FrameFeed):
    """Reads and prepares the next frames of a file in a thread, in order, at most `depth` ahead."""

    _END = object()

    def __init__(self, source: FrameSource, settings: Callable[[], CaptureSettings], depth: int = 2) -> None:
        super().__init__(source, settings)
        self._queue: queue.Queue[object] = queue.Queue(depth)
        self._stop = threading.Event()
        self._ended = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="capture-prefetch", daemon=True)
        self._thread.start()

    @property
    def ended(self) -> bool:
        return self._ended

    def next(self, timeout: float) -> Prepared | None:
        if self._ended:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is self._END:
            self._ended = True
            if self._error is not None:
                raise self._error
            return None
        assert isinstance(item, Prepared)
        return item

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                item = super().next(timeout=1.0)
                if item is None and self.source.ended:
                    break
                if item is not None:
                    self._put(item)
        except BaseException as exc:  # handed to the frame loop, which owns error reporting
            self._error = exc
        self._put(self._END)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.source.close()


def open_feed(source: FrameSource, settings: Callable[[], CaptureSettings]) -> FrameFeed:
    return FrameFeed(source, settings) if source.live else PrefetchFeed(source, settings)

"""Where frames come from: cameras, video files, network streams and the Raspberry Pi CSI camera.

Live sources (devices, streams, the CSI camera, files played at their own rate) are read by a thread that keeps
only the newest frame, so a slow scorer never builds up lag; it reopens a source that fails or disappears,
with backoff. Video files played as fast as possible are read in order, every frame.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from edgevision.backoff import Backoff
from edgevision.errors import EdgeVisionError

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
PICAMERA_NAMES = {"picamera", "picamera2", "csi"}
OPEN_TIMEOUT_MS = 10_000  # an unreachable stream must not block the reader for ffmpeg's default 30 s
DEFAULT_FPS = 25.0  # when a file does not say
MJPEG_FOURCCS = {b"MJPG", b"AVI1", b"JPEG"}


class SourceError(EdgeVisionError):
    """The video source cannot be used at all (missing or unreadable file, missing picamera2)."""


class SourceKind(str, Enum):
    DEVICE = "device"
    FILE = "file"
    STREAM = "stream"
    PICAMERA = "picamera"


@dataclass
class Frame:
    """One picture from a source. `timestamp` is the source's clock in seconds (the position in a file,
    monotonic time for live sources); `index` counts the source's frames from 0, skipped ones included.

    Frames of Motion-JPEG files arrive as the file's own JPEG (`jpeg`) and are decoded only if something
    needs the pixels (resizing, gray, the viewer): scoring and storing them needs no decode or re-encode."""

    image: np.ndarray | None
    index: int
    timestamp: float
    captured_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    jpeg: bytes | None = None
    size: tuple[int, int] = (0, 0)  # width, height

    def __post_init__(self) -> None:
        if self.image is not None:
            self.size = (self.image.shape[1], self.image.shape[0])

    def pixels(self) -> np.ndarray:
        """The frame as a BGR array, decoded from its JPEG the first time it is asked for."""
        if self.image is None:
            assert self.jpeg is not None
            self.image = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        return self.image


class Capture(Protocol):
    """What a source needs from cv2.VideoCapture (and the picamera2 adapter)."""

    def read(self) -> tuple[bool, Any]: ...
    def release(self) -> None: ...


def source_kind(video_path: str) -> SourceKind:
    path = video_path.strip()
    if path.isdigit() or re.fullmatch(r"/dev/video\d+", path):
        return SourceKind.DEVICE
    if path.lower() in PICAMERA_NAMES:
        return SourceKind.PICAMERA
    if "://" in path and path.split("://", 1)[0].lower() in STREAM_SCHEMES:
        return SourceKind.STREAM
    return SourceKind.FILE


def display_name(video_path: str) -> str:
    """The source as it may appear in logs and messages: stream credentials removed."""
    if source_kind(video_path) is not SourceKind.STREAM:
        return video_path
    parts = urlsplit(video_path)
    if parts.password is None and parts.username is None:
        return video_path
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class FrameSource(ABC):
    """A source of frames. `read` returns the next frame, or None when none came within `timeout`;
    `ended` tells a finished file from a live source that is momentarily silent."""

    live = True
    ended = False

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def read(self, timeout: float = 1.0) -> Frame | None: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileSource(FrameSource):
    """A video file read in order, every frame; loops when asked, otherwise ends. Motion-JPEG files are read
    without decoding (their frames already are JPEGs)."""

    live = False

    def __init__(self, path: str, *, loop: bool) -> None:
        super().__init__(path)
        self.path = path
        self.loop = loop
        self._capture, self.passthrough = open_file_raw(path)
        self.fps = file_fps(self._capture)
        self.size = (
            int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
        self._index = 0  # frames read since start, across loops: the clock of the file
        self._frames_in_pass = 0

    def read(self, timeout: float = 1.0) -> Frame | None:
        if self.ended:
            return None
        ok, data = self._capture.read()
        if not ok:
            if not (self.loop and self._frames_in_pass):
                self.ended = True
                return None
            self._capture.release()
            self._capture, self.passthrough = open_file_raw(self.path)
            self._frames_in_pass = 0
            ok, data = self._capture.read()
            if not ok:
                self.ended = True
                return None
        timestamp = self._index / self.fps
        if self.passthrough:
            frame = Frame(None, self._index, timestamp, jpeg=data.tobytes(), size=self.size)
        else:
            frame = Frame(data, self._index, timestamp)
        self._index += 1
        self._frames_in_pass += 1
        return frame

    def close(self) -> None:
        self._capture.release()


class LiveSource(FrameSource):
    """A reader thread keeps only the newest frame of `opener()`'s capture; a capture that cannot be opened or
    stops delivering is released and reopened with exponential backoff, forever (cameras come back).

    `pace` (frames/s) makes the reader wait between reads, for files played as if live; such a `file` that runs
    out is rewound when `loop`, otherwise the source ends."""

    def __init__(
        self,
        name: str,
        opener: Callable[[], Capture],
        *,
        max_backoff: float = 30.0,
        pace: float = 0.0,
        file: bool = False,
        loop: bool = True,
    ) -> None:
        super().__init__(name)
        self._opener = opener
        self.max_backoff = max_backoff
        self._pace = pace
        self._file = file
        self._loop = loop
        self._latest: Frame | None = None
        self._returned = -1
        self._index = 0
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self.failures = 0  # failed opens and lost captures, for the counters
        self._thread = threading.Thread(target=self._run, name="capture-reader", daemon=True)
        self._thread.start()

    def read(self, timeout: float = 1.0) -> Frame | None:
        with self._lock:
            self._lock.wait_for(lambda: self._has_new() or self.ended or self._stop.is_set(), timeout)
            if not self._has_new():
                return None
            frame = self._latest
            assert frame is not None
            self._returned = frame.index
            return frame

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        self._thread.join(OPEN_TIMEOUT_MS / 1000 + 5)

    def _has_new(self) -> bool:
        return self._latest is not None and self._latest.index > self._returned

    def _run(self) -> None:
        backoff = Backoff(self.max_backoff)
        while not self._stop.is_set():
            backoff.maximum = self.max_backoff
            capture = self._open()
            if capture is None:
                self._wait(backoff.next())
                continue
            delivered = self._pump(capture)
            capture.release()
            if self._stop.is_set() or (self._file and delivered and not self._loop):
                break
            if self._file and delivered:
                continue  # the end of a looping file: rewind at once
            if delivered:
                backoff.reset()  # it worked for a while: come back quickly
            self.failures += 1
            delay = backoff.next()
            log.warning("video source %s stopped delivering frames; reopening in %.1f s", self.name, delay)
            self._wait(delay)
        with self._lock:
            self.ended = True
            self._lock.notify_all()

    def _open(self) -> Capture | None:
        try:
            capture = self._opener()
        except Exception as exc:  # drivers raise anything; the camera may come back
            log.warning("cannot open video source %s: %s", self.name, exc)
            self.failures += 1
            return None
        log.info("video source %s opened", self.name)
        return capture

    def _pump(self, capture: Capture) -> int:
        """Read until the capture fails or we stop; returns how many frames it delivered."""
        delivered = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                ok, image = capture.read()
            except Exception as exc:  # a driver error is one more failure to retry, not the end of the reader
                log.warning("reading %s failed: %s", self.name, exc)
                return delivered
            if not ok or image is None:
                return delivered
            delivered += 1
            frame = Frame(image, self._index, time.monotonic())
            self._index += 1
            with self._lock:
                self._latest = frame
                self._lock.notify_all()
            if self._pace:
                next_at += 1.0 / self._pace
                self._wait(next_at - time.monotonic())
        return delivered

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stop.wait(seconds)


class PiCamera:
    """picamera2 behind the read()/release() interface of cv2.VideoCapture (BGR frames)."""

    def __init__(self) -> None:
        from picamera2 import Picamera2  # optional extra: edgevision[picamera], checked by open_source

        self._camera = Picamera2()
        # RGB888 in libcamera terms is B,G,R in memory: what OpenCV expects.
        self._camera.configure(self._camera.create_video_configuration(main={"format": "RGB888"}))
        self._camera.start()

    def read(self) -> tuple[bool, Any]:
        try:
            return True, self._camera.capture_array()
        except Exception as exc:
            log.warning("picamera2 capture failed: %s", exc)
            return False, None

    def release(self) -> None:
        self._camera.stop()
        self._camera.close()


def open_file(path: str) -> Any:
    """cv2.VideoCapture on a file, or SourceError naming VIDEO_PATH."""
    file = Path(path)
    if not file.exists():
        raise SourceError(f"VIDEO_PATH: no such file: {path}")
    if not file.is_file():
        raise SourceError(f"VIDEO_PATH: not a file, device or stream: {path}")
    capture = cv2.VideoCapture(str(file))
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"VIDEO_PATH: cannot read {path} as a video (unsupported or damaged file)")
    return capture


def open_file_raw(path: str) -> tuple[Any, bool]:
    """A capture on the file and whether it hands out the file's own JPEGs (Motion-JPEG with complete
    JPEG frames); any other file is decoded as usual."""
    capture = open_file(path)
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little")
    if fourcc.upper() not in MJPEG_FOURCCS:
        return capture, False
    raw = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if raw.isOpened() and raw.set(cv2.CAP_PROP_FORMAT, -1) and _is_complete_jpeg(raw):
        capture.release()
        raw.release()
        raw = cv2.VideoCapture(path, cv2.CAP_FFMPEG)  # from the first frame again
        raw.set(cv2.CAP_PROP_FORMAT, -1)
        return raw, True
    raw.release()
    return capture, False


def _is_complete_jpeg(capture: Any) -> bool:
    # Some cameras write MJPEG without Huffman tables (DHT), which image decoders reject: decode those.
    ok, packet = capture.read()
    if not ok or packet is None or packet.ndim != 2 or packet.shape[0] != 1:
        return False
    data = packet.tobytes()
    return data.startswith(b"\xff\xd8") and b"\xff\xc4" in data and cv2.imdecode(packet, cv2.IMREAD_COLOR) is not None


def file_fps(capture: Any) -> float:
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if 0.0 < fps < 1000.0 else DEFAULT_FPS


def _open_device(video_path: str) -> Any:
    target: int | str = int(video_path) if video_path.isdigit() else video_path
    if isinstance(target, str) and not Path(target).exists():
        raise OSError(f"{target} does not exist (camera unplugged or not passed to the container?)")
    capture = cv2.VideoCapture(target, cv2.CAP_V4L2)
    if not capture.isOpened():
        capture.release()
        raise OSError("the device does not open (busy, not a camera, or no permission: `video` group)")
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue would otherwise hand out stale frames first
    return capture


def _open_stream(url: str) -> Any:
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS]
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    if not capture.isOpened():
        capture.release()
        raise OSError("the stream does not open (unreachable, refused or not a video)")
    return capture


def check_source(video_path: str) -> None:
    """Raise SourceError now for a source that retrying cannot fix (a missing file); devices and streams
    are only tried when opened, since they may come and go."""
    if source_kind(video_path) is SourceKind.FILE:
        open_file(video_path).release()


def open_source(video_path: str, *, loop: bool, paced: bool = False, max_backoff: float = 30.0) -> FrameSource:
    """The source `video_path` names. Raises SourceError only for what retrying cannot fix (a missing file)."""
    kind = source_kind(video_path)
    name = display_name(video_path)
    if kind is SourceKind.FILE:
        if not paced:
            return FileSource(video_path, loop=loop)
        probe = open_file(video_path)  # fail now, with one clear line, rather than inside the reader thread
        fps = file_fps(probe)
        probe.release()
        return LiveSource(name, lambda: open_file(video_path), max_backoff=max_backoff, pace=fps, file=True, loop=loop)
    if kind is SourceKind.DEVICE:
        return LiveSource(name, lambda: _open_device(video_path.strip()), max_backoff=max_backoff)
    if kind is SourceKind.STREAM:
        return LiveSource(name, lambda: _open_stream(video_path), max_backoff=max_backoff)
    if importlib.util.find_spec("picamera2") is None:
        raise SourceError(
            f"VIDEO_PATH={video_path} needs picamera2 (pip install 'edgevision[picamera]' on Raspberry Pi OS)"
        )
    return LiveSource(name, PiCamera, max_backoff=max_backoff)

"""Video sources: files in order, live sources keeping only the newest frame, streams that go away and come
back, devices that are not there; and the frames prepared for the scorer."""

from __future__ import annotations

import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgevision.capture.frames import prepare, target_size
from edgevision.capture.settings import CaptureSettings
from edgevision.capture.sources import (
    FileSource,
    SourceError,
    SourceKind,
    display_name,
    open_source,
    source_kind,
)
from edgevision.demo.slideshow import Slideshow, letterbox, make_slideshow
from tests.capture.conftest import DOG, ZEBRAS_1
from tests.conftest import free_port, shared_path, wait_until


def read_all(path: Path, every: int = 1) -> tuple[int, list[np.ndarray]]:
    """How many frames OpenCV reads from `path`, and every `every`-th of them."""
    capture = cv2.VideoCapture(str(path))
    count, kept = 0, []
    while True:
        ok, frame = capture.read()
        if not ok:
            return count, kept
        if count % every == 0:
            kept.append(frame)
        count += 1


def test_source_kinds_and_credentials_kept_out_of_names() -> None:
    assert source_kind("0") is SourceKind.DEVICE
    assert source_kind("/dev/video2") is SourceKind.DEVICE
    assert source_kind("rtsp://cam.local/stream1") is SourceKind.STREAM
    assert source_kind("https://example.org/live.mjpg") is SourceKind.STREAM
    assert source_kind("picamera") is SourceKind.PICAMERA
    assert source_kind("/data/clip.avi") is SourceKind.FILE
    assert display_name("rtsp://admin:hunter2@10.0.0.5:554/h264") == "rtsp://10.0.0.5:554/h264"
    assert display_name("/data/clip.avi") == "/data/clip.avi"


def test_a_missing_file_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="VIDEO_PATH: no such file"):
        open_source("/nonexistent/clip.avi", loop=False)
    with pytest.raises(SourceError, match="VIDEO_PATH"):
        open_source("/nonexistent/clip.avi", loop=True, paced=True)


def test_a_file_is_read_in_order_every_frame_then_ends() -> None:
    path = shared_path("media/video/vtest.avi")
    count, expected = read_all(path, every=50)
    source = FileSource(str(path), loop=False)
    indexes, sampled = [], []
    while (frame := source.read()) is not None:
        indexes.append(frame.index)
        if frame.index % 50 == 0:
            sampled.append(frame.pixels())
        if frame.index == 10:
            assert frame.timestamp == pytest.approx(10 / source.fps)
    source.close()
    assert source.ended and not source.passthrough  # MP43: decoded
    assert indexes == list(range(count))
    assert all(np.array_equal(a, b) for a, b in zip(sampled, expected, strict=True))


def test_a_looping_file_starts_again(slideshow: Slideshow) -> None:
    source = FileSource(str(slideshow), loop=True)
    frames = [source.read() for _ in range(slideshow.frame_count + 2)]
    source.close()
    assert not source.ended
    assert [f.index for f in frames] == list(range(slideshow.frame_count + 2))  # the clock keeps counting
    assert frames[slideshow.frame_count].jpeg == frames[0].jpeg
    assert np.array_equal(frames[slideshow.frame_count].pixels(), frames[0].pixels())


def test_motion_jpeg_frames_are_sent_and_stored_as_the_file_has_them(slideshow: Slideshow) -> None:
    raw = cv2.VideoCapture(str(slideshow), cv2.CAP_FFMPEG)
    raw.set(cv2.CAP_PROP_FORMAT, -1)
    packets = [raw.read()[1].tobytes() for _ in range(2)]
    raw.release()
    source = FileSource(str(slideshow), loop=False)
    frames = [source.read() for _ in range(2)]
    source.close()
    assert source.passthrough
    assert [f.jpeg for f in frames] == packets
    assert all(f.image is None and f.size == (640, 480) for f in frames)  # nothing decoded yet
    plain = prepare(frames[0], settings())
    assert plain.jpeg == packets[0] and plain.original_jpeg() == packets[0]
    small = prepare(frames[1], settings(RESIZE_WIDTH="320"))
    assert cv2.imdecode(np.frombuffer(small.jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    assert small.original_jpeg() == packets[1]  # a capture keeps the file's own picture
    _, decoded = read_all(slideshow.path, every=1)
    # The same picture as FFmpeg's decode (decoders differ in chroma upsampling by a level or two).
    assert np.abs(frames[1].pixels().astype(int) - decoded[1].astype(int)).mean() < 2


def test_slideshow_shows_each_photo_for_its_frames(slideshow: Slideshow) -> None:
    _, frames = read_all(slideshow.path)
    assert len(frames) == slideshow.frame_count
    originals = {p: letterbox(cv2.imread(str(p)), (640, 480)).astype(np.int16) for p in set(slideshow.photos)}
    for index, frame in enumerate(frames):
        distance = {p: np.abs(frame.astype(np.int16) - o).mean() for p, o in originals.items()}
        assert min(distance, key=distance.get) == slideshow.photo_at(index)
    assert slideshow.frames_of(ZEBRAS_1) == range(3, 6)


def test_a_file_played_at_its_rate_keeps_only_the_newest_frame(tmp_path: Path) -> None:
    clip = make_slideshow([DOG, ZEBRAS_1], tmp_path / "fast.avi", fps=50.0, seconds_each=0.6)
    source = open_source(str(clip), loop=False, paced=True)
    assert source.live
    seen = []
    while (frame := source.read(timeout=5)) is not None:
        seen.append(frame.index)
        time.sleep(0.1)  # a slow scorer: 5 source frames go by per read
    source.close()
    assert source.ended
    assert seen == sorted(set(seen))  # never an old frame again
    assert len(seen) < clip.frame_count / 2  # frames were skipped rather than queued
    assert max(b - a for a, b in itertools.pairwise(seen)) > 1


class MJPEGServer:
    """A network camera: an HTTP MJPEG stream of a photo with a frame counter, on a fixed port."""

    def __init__(self, port: int, photo: Path) -> None:
        image = cv2.resize(cv2.imread(str(photo)), (320, 240))
        self.port = port
        self.stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=f")
                self.end_headers()
                n = 0
                while not outer.stopping.is_set():
                    frame = image.copy()
                    cv2.putText(frame, str(n), (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
                    data = cv2.imencode(".jpg", frame)[1].tobytes()
                    try:
                        self.wfile.write(b"--f\r\nContent-Type: image/jpeg\r\n")
                        self.wfile.write(f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
                    except OSError:
                        return
                    n += 1
                    time.sleep(0.02)

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_a_stream_that_disappears_is_retried_until_it_returns() -> None:
    port = free_port()
    camera = MJPEGServer(port, DOG)
    source = open_source(f"http://user:pw@127.0.0.1:{port}/video.mjpg", loop=False, max_backoff=0.5)
    try:
        assert source.live and "pw" not in source.name
        first = wait_until(lambda: source.read(timeout=2), 30, "a first frame")
        assert first.pixels().shape == (240, 320, 3)
        camera.stop()  # the camera goes away...
        wait_until(lambda: source.failures >= 2, 30, "reconnect attempts")
        assert not source.ended
        camera = MJPEGServer(port, DOG)  # ...and comes back
        last = first.index
        wait_until(lambda: (f := source.read(timeout=1)) is not None and f.index > last + 3, 30, "frames again")
    finally:
        source.close()
        camera.stop()


def test_a_camera_that_is_not_there_is_retried_not_fatal() -> None:
    source = open_source("/dev/video97", loop=False, max_backoff=0.2)
    try:
        assert source.read(timeout=0.3) is None
        wait_until(lambda: source.failures >= 2, 10, "retries")
        assert not source.ended
    finally:
        source.close()


# -- frames prepared for the scorer -----------------------------------------------------------------


def settings(**env: str) -> CaptureSettings:
    return CaptureSettings.from_env({"VIDEO_PATH": "0", **env})


@pytest.mark.parametrize(
    ("env", "size"),
    [
        ({}, None),
        ({"RESIZE_WIDTH": "320"}, (320, 240)),
        ({"RESIZE_HEIGHT": "120"}, (160, 120)),
        ({"RESIZE_WIDTH": "320", "RESIZE_HEIGHT": "320"}, (320, 240)),
        ({"RESIZE_WIDTH": "1280"}, None),  # never enlarged while keeping the aspect ratio
        ({"RESIZE_WIDTH": "224", "RESIZE_HEIGHT": "224", "KEEP_ASPECT_RATIO": "no"}, (224, 224)),
        ({"RESIZE_WIDTH": "300", "KEEP_ASPECT_RATIO": "no"}, (300, 480)),
    ],
)
def test_target_size(env: dict[str, str], size: tuple[int, int] | None) -> None:
    assert target_size(640, 480, settings(**env)) == size


def test_prepared_frames_are_jpegs_as_configured_and_the_original_is_kept() -> None:
    from edgevision.capture.sources import Frame

    image = letterbox(cv2.imread(str(ZEBRAS_1)), (640, 480))
    frame = Frame(image, 0, 0.0)
    plain = prepare(frame, settings(JPEG_QUALITY="80"))
    assert not plain.transformed and plain.original_jpeg() is plain.jpeg
    small_gray = prepare(frame, settings(RESIZE_WIDTH="320", CONVERT_TO_GRAY="true"))
    sent = cv2.imdecode(np.frombuffer(small_gray.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert sent.shape == (240, 320)  # one channel: gray
    kept = cv2.imdecode(np.frombuffer(small_gray.original_jpeg(), np.uint8), cv2.IMREAD_UNCHANGED)
    assert kept.shape == (480, 640, 3)
    assert np.abs(kept.astype(int) - image.astype(int)).mean() < 3

"""Camera loop benchmark: frames/s of the whole `edgevision capture` loop (read, encode, POST, parse, report,
capture) with the real scorer in the loop, against the scorer alone on the same JPEG frames, in one run;
and the peak RSS of the capture process.

    .venv/bin/python bench/bench_capture.py [--video clip.avi] [--frames 200] [--rounds 5]

Targets: loop >= 0.9x the scorer alone; capture process peak RSS <= 120 MB.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgevision.capture.frames import encode_jpeg  # noqa: E402
from edgevision.capture.slideshow import make_slideshow  # noqa: E402
from edgevision.demo import demo_photos  # noqa: E402

FINISHED = re.compile(r"capture finished: (\d+) frames, (\d+) scored, (\d+) errors, \d+ captures in ([\d.]+) s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_scorer(port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "edgevision", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return process
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the scoring service did not start")


def clip_frames(path: Path, limit: int, quality: int) -> list[bytes]:
    """The clip's first `limit` frames as the JPEGs the module would send."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(encode_jpeg(image, quality))
    capture.release()
    return frames


def scorer_alone(url: str, frames: list[bytes]) -> float:
    """Frames/s of sequential POSTs of ready-made JPEGs over one kept-alive session: the ceiling."""
    session = requests.Session()
    headers = {"Content-Type": "application/octet-stream"}
    started = time.perf_counter()
    for jpeg in frames:
        response = session.post(url, data=jpeg, headers=headers, timeout=30)
        response.raise_for_status()
        response.json()
    return len(frames) / (time.perf_counter() - started)


def peak_rss_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else None


def capture_loop(url: str, video: Path, frames: int, workdir: Path) -> tuple[float, float]:
    """Frames/s of the module's own loop over the clip (from its summary line) and its peak RSS, MB."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IOTEDGE_")},
        "VIDEO_PATH": str(video),
        "LOOP_VIDEO": "false",
        "IMAGE_PROCESSING_ENDPOINT": url,
        "SEND_MODE": "every",  # the heaviest reporting: a message per frame
        "MIN_SEND_INTERVAL": "0",
        "CAPTURE_TAGS": "zebra",
        "CAPTURE_COOLDOWN": "0",
        "CAPTURE_DIR": str(workdir / "captures"),
    }
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "capture.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "edgevision", "capture"], cwd=ROOT, env=env, stderr=out)
        peak = 0.0
        while process.poll() is None:
            peak = max(peak, peak_rss_mb(process.pid) or 0.0)
            time.sleep(0.05)
    text = log.read_text()
    match = FINISHED.search(text)
    if process.returncode != 0 or match is None:
        raise SystemExit(f"the capture module failed:\n{text[-2000:]}")
    handled, scored, errors, seconds = int(match[1]), int(match[2]), int(match[3]), float(match[4])
    if errors or scored != handled or handled != frames:
        raise SystemExit(f"unexpected run: {handled} frames, {scored} scored, {errors} errors (wanted {frames})")
    return handled / seconds, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, help="clip to play (default: a slideshow of the bundled photos)")
    parser.add_argument("--frames", type=int, default=200, help="frames per measurement (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are reported")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
        workdir = Path(tmp)
        if args.video is None:
            photos = demo_photos()
            video = make_slideshow(photos, workdir / "slides.avi", 10.0, args.frames / len(photos) / 10.0).path
        else:
            video = workdir / "clip.avi"  # the first --frames frames, so both sides see exactly the same
            _write_clip(args.video, video, args.frames)
        frames = clip_frames(video, 100_000, quality=90)
        port = free_port()
        scorer = start_scorer(port)
        url = f"http://127.0.0.1:{port}/image"
        try:
            scorer_alone(url, frames[:20])  # warm-up: model, sockets, caches
            alone, loop, rss = [], [], []
            for round_ in range(args.rounds):
                alone.append(scorer_alone(url, frames))
                fps, peak = capture_loop(url, video, len(frames), workdir / f"round{round_}")
                loop.append(fps)
                rss.append(peak)
                print(f"round {round_ + 1}: scorer alone {alone[-1]:.1f}, loop {fps:.1f} frames/s; RSS {peak:.0f} MB")
        finally:
            scorer.terminate()
            scorer.wait(10)

    a, b = statistics.median(alone), statistics.median(loop)
    ratios = [y / x for x, y in zip(alone, loop, strict=True)]  # adjacent pairs see the same machine load
    ratio = statistics.median(ratios)
    height, width = cv2.imdecode(np.frombuffer(frames[0], np.uint8), cv2.IMREAD_COLOR).shape[:2]
    print()
    cpu = platform.processor() or platform.machine()
    print(f"machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, OpenCV {cv2.__version__}")
    print(f"clip: {(args.video or video).name}, {len(frames)} frames of {width} x {height}, JPEG quality 90")
    print(f"| measurement | frames/s (median of {args.rounds}) |")
    print("|---|---|")
    print(f"| scorer alone (sequential POSTs of the same JPEGs) | {a:.1f} |")
    print(f"| whole capture loop, scorer in the loop | {b:.1f} |")
    print(f"| best of each | {max(alone):.1f} / {max(loop):.1f} ({max(loop) / max(alone):.2f}x) |")
    print(f"| loop / scorer alone, median of the paired rounds (target >= 0.9) | {ratio:.2f}x |")
    print(f"| capture process peak RSS (target <= 120 MB) | {max(rss):.0f} MB |")
    return 0 if ratio >= 0.9 and max(rss) <= 120 else 1


def _write_clip(source: Path, target: Path, frames: int) -> None:
    """The first `frames` frames of `source` as an MJPG clip, so both sides see exactly the same frames."""
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    writer = None
    for _ in range(frames):
        ok, image = capture.read()
        if not ok:
            break
        if writer is None:
            size = (image.shape[1], image.shape[0])
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
        writer.write(image)
    capture.release()
    if writer is not None:
        writer.release()


if __name__ == "__main__":
    raise SystemExit(main())

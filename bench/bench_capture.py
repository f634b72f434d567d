"""Camera loop benchmark: frames/s of the whole `edgevision capture` loop (read, encode, POST, parse, report,
capture) with the real scorer in the loop, against the scorer alone on the same JPEG frames, in one run;
and the peak RSS of the capture process.

    .venv/bin/python bench/bench_capture.py [--video clip.avi] [--frames 200] [--rounds 5]

The default clip is a Motion-JPEG slideshow of the bundled photos (frames go out as stored); pass
`--video ../shared/media/video/vtest.avi` (MPEG-4) for the decode + re-encode path.

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

from edgevision.capture.frames import prepare  # noqa: E402
from edgevision.capture.settings import CaptureSettings  # noqa: E402
from edgevision.capture.sources import FileSource  # noqa: E402
from edgevision.demo import demo_photos  # noqa: E402
from edgevision.demo.slideshow import make_slideshow  # noqa: E402

LOOP_MS = re.compile(r"frame \d+: .* loop ([\d.]+) ms")
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


def clip_frames(path: Path) -> list[bytes]:
    """The exact JPEGs the module sends for the clip (its own reader and preparation, default settings)."""
    settings = CaptureSettings.from_env({"VIDEO_PATH": str(path)})
    source = FileSource(str(path), loop=False)
    frames = []
    while (frame := source.read()) is not None:
        frames.append(prepare(frame, settings).jpeg)
    source.close()
    return frames


def scorer_alone(url: str, frames: list[bytes]) -> tuple[float, list[float]]:
    """Frames/s of sequential POSTs of ready-made JPEGs over one kept-alive session (the ceiling), and the
    milliseconds of each."""
    session = requests.Session()
    headers = {"Content-Type": "application/octet-stream"}
    times = []
    started = time.perf_counter()
    for jpeg in frames:
        begin = time.perf_counter()
        response = session.post(url, data=jpeg, headers=headers, timeout=30)
        response.raise_for_status()
        response.json()
        times.append((time.perf_counter() - begin) * 1000)
    return len(frames) / (time.perf_counter() - started), times


def peak_rss_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else None


def capture_loop(url: str, video: Path, frames: int, workdir: Path) -> tuple[float, list[float], float]:
    """Frames/s of the module's own loop over the clip (from its summary line), the milliseconds of each
    frame (VERBOSE timings), and the process's peak RSS, MB."""
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
        "VERBOSE": "true",
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
    return handled / seconds, [float(ms) for ms in LOOP_MS.findall(text)], peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, help="clip to play, whole (default: a slideshow of the bundled photos)")
    parser.add_argument("--frames", type=int, default=200, help="frames of the default slideshow (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are reported")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
        workdir = Path(tmp)
        if args.video is None:
            photos = demo_photos()
            video = make_slideshow(photos, workdir / "slides.avi", 10.0, args.frames / len(photos) / 10.0).path
        else:
            video = args.video  # played whole: --frames applies to the generated slideshow
        frames = clip_frames(video)
        probe = FileSource(str(video), loop=False)
        passthrough = probe.passthrough
        probe.close()
        port = free_port()
        scorer = start_scorer(port)
        url = f"http://127.0.0.1:{port}/image"
        try:
            scorer_alone(url, frames[:20])  # warm-up: model, sockets, caches
            alone, loop, rss, alone_ms, loop_ms = [], [], [], [], []
            for round_ in range(args.rounds):
                fps, times = scorer_alone(url, frames)
                alone.append(fps)
                alone_ms += times
                fps, times, peak = capture_loop(url, video, len(frames), workdir / f"round{round_}")
                loop.append(fps)
                loop_ms += times
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
    how = "Motion-JPEG, sent as stored" if passthrough else "decoded, re-encoded at JPEG quality 90"
    print(f"clip: {(args.video or video).name}, {len(frames)} frames of {width} x {height} ({how})")
    print(f"| measurement | frames/s (median of {args.rounds}) |")
    print("|---|---|")
    print(f"| scorer alone (sequential POSTs of the same JPEGs) | {a:.1f} |")
    print(f"| whole capture loop, scorer in the loop | {b:.1f} |")
    print(f"| best of each | {max(alone):.1f} / {max(loop):.1f} ({max(loop) / max(alone):.2f}x) |")
    print(f"| loop / scorer alone, median of the paired rounds | {ratio:.2f}x |")
    per_alone, per_loop = statistics.median(alone_ms), statistics.median(loop_ms)
    print(f"| median ms per frame: scorer alone / loop | {per_alone:.1f} / {per_loop:.1f} |")
    print(f"| frames/s from those medians, loop / scorer alone (target >= 0.9) | {per_alone / per_loop:.2f}x |")
    print(f"| capture process peak RSS (target <= 120 MB) | {max(rss):.0f} MB |")
    return 0 if per_alone / per_loop >= 0.9 and max(rss) <= 120 else 1


if __name__ == "__main__":
    raise SystemExit(main())

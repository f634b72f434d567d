"""Camera loop benchmark: frames/s of the whole `edgevision capture` loop (read, encode, POST, parse, report,
capture) with the real scorer in the loop, against the scorer alone on the same JPEG frames, in one run;
and the peak RSS of the capture process.

    .venv/bin/python bench/bench_capture.py [--video clip.avi] [--frames 200] [--rounds 5] [--other CHECKOUT]

The default clip is a Motion-JPEG slideshow of the bundled photos (frames go out as stored); pass
`--video ../shared/media/video/vtest.avi` (MPEG-4) for the decode + re-encode path. `--other` also runs the
capture module of another checkout of edgevision (an older commit, say) in every round, against the same
scorer, the two loops in alternating order (ABBA), and compares them; the capture process's CPU per frame is
taken from /proc between 10 % and 90 % of the frames (start-up excluded).

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


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def capture_loop(
    url: str, video: Path, frames: int, workdir: Path, root: Path = ROOT
) -> tuple[float, list[float], float, float]:
    """Frames/s of the module's own loop over the clip (from its summary line), the milliseconds of each
    frame (VERBOSE timings), the process's peak RSS, MB, and its CPU ms per frame in the steady state."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IOTEDGE_")},
        "PYTHONPATH": str(root),  # the edgevision of `root`, whatever is installed
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
    samples: list[tuple[int, float]] = []  # (frames logged so far, CPU seconds of the process)
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "edgevision", "capture"], cwd=root, env=env, stderr=out)
        peak = 0.0
        while process.poll() is None:
            peak = max(peak, peak_rss_mb(process.pid) or 0.0)
            cpu = cpu_seconds(process.pid)
            if cpu is not None:
                samples.append((log.read_bytes().count(b" loop "), cpu))
            time.sleep(0.05)
    text = log.read_text()
    match = FINISHED.search(text)
    if process.returncode != 0 or match is None:
        raise SystemExit(f"the capture module failed:\n{text[-2000:]}")
    handled, scored, errors, seconds = int(match[1]), int(match[2]), int(match[3]), float(match[4])
    if errors or scored != handled or handled != frames:
        raise SystemExit(f"unexpected run: {handled} frames, {scored} scored, {errors} errors (wanted {frames})")
    first = next(s for s in samples if s[0] >= frames * 0.1)
    last = [s for s in samples if s[0] <= frames * 0.9][-1]
    cpu_ms = (last[1] - first[1]) * 1000 / max(1, last[0] - first[0])
    return handled / seconds, [float(ms) for ms in LOOP_MS.findall(text)], peak, cpu_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, help="clip to play, whole (default: a slideshow of the bundled photos)")
    parser.add_argument("--frames", type=int, default=200, help="frames of the default slideshow (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are reported")
    parser.add_argument("--other", type=Path, help="another edgevision checkout whose capture loop runs too")
    args = parser.parse_args()
    other = args.other.resolve() if args.other else None
    if other is not None and not (other / "edgevision" / "capture").is_dir():
        raise SystemExit(f"{other}: not an edgevision checkout")

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
            alone, loop, rss, alone_ms, loop_ms, cpu = [], [], [], [], [], []
            theirs: list[tuple[float, float, float]] = []  # --other: frames/s, median loop ms, CPU ms/frame
            for round_ in range(args.rounds):
                fps, times = scorer_alone(url, frames)
                alone.append(fps)
                alone_ms += times
                mine_first = round_ % 2 == 0  # ABBA: neither loop always runs right after the scorer alone
                for which in ("mine", "other") if mine_first else ("other", "mine"):
                    if which == "other" and other is None:
                        continue
                    root = ROOT if which == "mine" else other
                    fps, times, peak, cpu_ms = capture_loop(url, video, len(frames), workdir / f"{which}{round_}", root)
                    if which == "other":
                        theirs.append((fps, statistics.median(times), cpu_ms))
                        print(f"round {round_ + 1}: other loop {fps:.1f} frames/s, CPU {cpu_ms:.2f} ms/frame")
                        continue
                    loop.append(fps)
                    loop_ms += times
                    rss.append(peak)
                    cpu.append(cpu_ms)
                    print(
                        f"round {round_ + 1}: scorer alone {alone[-1]:.1f}, loop {fps:.1f} frames/s;"
                        f" CPU {cpu_ms:.2f} ms/frame; RSS {peak:.0f} MB"
                    )
        finally:
            scorer.terminate()
            scorer.wait(10)

    a, b = statistics.median(alone), statistics.median(loop)
    ratios = [y / x for x, y in zip(alone, loop, strict=True)]  # adjacent pairs see the same machine load
    ratio = statistics.median(ratios)
    height, width = cv2.imdecode(np.frombuffer(frames[0], np.uint8), cv2.IMREAD_COLOR).shape[:2]
    print()
    processor = platform.processor() or platform.machine()
    print(f"machine: {os.cpu_count()} cores, {processor}, Python {platform.python_version()}, OpenCV {cv2.__version__}")
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
    print(f"| capture process CPU per frame (median) | {statistics.median(cpu):.2f} ms |")
    print(f"| capture process peak RSS (target <= 120 MB) | {max(rss):.0f} MB |")
    if theirs:
        print()
        print(f"| {ROOT.name} vs --other {other.name}, same scorer | this checkout | other |")
        print("|---|---|---|")
        paired = statistics.median(y / x[0] for x, y in zip(theirs, loop, strict=True))
        print(f"| loop frames/s (median) | {b:.1f} | {statistics.median(t[0] for t in theirs):.1f} |")
        print(
            f"| median ms per frame (VERBOSE loop) | {per_loop:.1f} | {statistics.median(t[1] for t in theirs):.1f} |"
        )
        their_cpu = statistics.median(t[2] for t in theirs)
        print(f"| CPU ms per frame (median) | {statistics.median(cpu):.2f} | {their_cpu:.2f} |")
        print(f"| this / other frames/s, median of the paired rounds | {paired:.2f}x | |")
    return 0 if per_alone / per_loop >= 0.9 and max(rss) <= 120 else 1


if __name__ == "__main__":
    raise SystemExit(main())

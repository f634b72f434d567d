"""Where a scoring request's milliseconds go: cProfile of the real service (`serve()`, waitress, Flask) under load.

The service runs in this process exactly as `edgevision serve` runs it; every waitress worker thread's
request handling and the main thread's socket loop are profiled (one cProfile per thread, merged). A client
process sends the bundled photos over keep-alive connections. Then the inclusive time of the pipeline's stages
is reported per request, and the functions with the most own time.

    .venv/bin/python bench/profile_service.py [--requests 800] [--concurrency 4] [--max-predictions 0] [--top 25]

cProfile slows pure-Python code (Flask, waitress, the JSON writer) by roughly 1.5-2x and C code (decode,
resize, onnxruntime) not at all: read the Python stages as upper bounds, and compare with bench_service.py.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_service import HttpClient, free_port  # noqa: E402

# Stage -> (file suffix, function name) whose inclusive (cumulative) time is the stage's.
STAGES = {
    "whole request in a worker (waitress task)": ("waitress/task.py", "service"),
    "  Flask dispatch (routing, hooks, view)": ("flask/app.py", "full_dispatch_request"),
    "    request body read (werkzeug get_data)": ("werkzeug/wrappers/request.py", "get_data"),
    "    decode (decode_image)": ("edgevision/models/images.py", "decode_image"),
    "    pre-process (resize, normalise)": ("edgevision/models/model.py", "__call__"),
    "    inference (ImageModel.infer)": ("edgevision/models/model.py", "infer"),
    "    JSON answer (PredictionWriter.body)": ("edgevision/classifier/response.py", "body"),
    "    metrics hooks (after_request record)": ("edgevision/classifier/app.py", "record"),
    "  response write to the channel (waitress)": ("waitress/task.py", "write"),
    "socket loop, main thread (waitress wasyncore)": ("waitress/wasyncore.py", "poll"),
}

IDLE = {
    "<method 'poll' of 'select.poll' objects>",
    "<built-in method select.select>",
    "<method 'acquire' of '_thread.lock' objects>",
}


def client(port: int, requests: int, concurrency: int) -> None:
    """The load: `requests` POSTs of the bundled photos from `concurrency` keep-alive connections."""
    from concurrent.futures import ThreadPoolExecutor

    from edgevision.demo import demo_photos

    images = [p.read_bytes() for p in demo_photos()]
    http = HttpClient(port)
    for image in images:
        http(image)  # warm-up: connections, arenas
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda i: http(images[i % len(images)]), range(requests)))


class ThreadProfiles:
    """One cProfile per waitress worker thread, enabled only while it serves a task."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.all: list[cProfile.Profile] = []
        self.lock = threading.Lock()

    def install(self) -> None:
        from waitress import task

        original = task.Task.service
        profiles = self

        def service(self_task):
            profile = getattr(profiles.local, "profile", None)
            if profile is None:
                profile = profiles.local.profile = cProfile.Profile()
                with profiles.lock:
                    profiles.all.append(profile)
            profile.enable()
            try:
                return original(self_task)
            finally:
                profile.disable()

        task.Task.service = service


def stage_times(stats: pstats.Stats, requests: int) -> list[tuple[str, float, int]]:
    """(stage, inclusive ms per request, calls) for every stage found in the merged profile."""
    rows = []
    for stage, (suffix, name) in STAGES.items():
        total, calls = 0.0, 0
        for (file, _, function), (_, primitive_calls, _, cumulative, _) in stats.stats.items():
            if function == name and file.replace(os.sep, "/").endswith(suffix):
                total, calls = total + cumulative, calls + primitive_calls
        rows.append((stage, total * 1000 / requests, calls))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-predictions", type=int, default=0, help="MAX_PREDICTIONS (0 = every tag)")
    parser.add_argument("--top", type=int, default=25, help="functions listed by own time")
    parser.add_argument("--client", nargs=3, type=int, metavar=("PORT", "N", "C"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        client(*args.client)
        return 0

    from edgevision.classifier.server import serve
    from edgevision.classifier.settings import ClassifierSettings

    port = free_port()
    os.environ.update(
        {"HOST": "127.0.0.1", "PORT": str(port), "MAX_PREDICTIONS": str(args.max_predictions), "INTRA_OP_THREADS": "1"}
    )
    settings = ClassifierSettings.from_env()
    workers = ThreadProfiles()
    workers.install()
    elapsed: list[float] = []

    def drive() -> None:
        time.sleep(3)  # the model loads
        started = time.perf_counter()
        command = [sys.executable, __file__, "--client", str(port), str(args.requests), str(args.concurrency)]
        subprocess.run(command, check=True, cwd=ROOT)
        elapsed.append(time.perf_counter() - started)
        os.kill(os.getpid(), signal.SIGTERM)  # serve() leaves cleanly on SIGTERM

    threading.Thread(target=drive, daemon=True).start()
    main_profile = cProfile.Profile()
    main_profile.enable()
    try:
        serve(settings)
    except SystemExit:
        pass
    finally:
        main_profile.disable()
    report(args, settings, workers, main_profile, elapsed[0] if elapsed else float("nan"))
    return 0


def report(args, settings, workers: ThreadProfiles, main_profile: cProfile.Profile, seconds: float) -> None:
    requests = args.requests + 10  # with the warm-up
    stats = pstats.Stats(main_profile)
    for profile in workers.all:
        stats.add(profile)
    print(
        f"{requests} requests (10 warm-up), concurrency {args.concurrency}, THREADS={settings.threads},"
        f" MAX_PREDICTIONS={args.max_predictions}; {args.requests / seconds:.1f} img/s under the profiler"
    )
    print()
    print("| stage | ms per request (inclusive, summed over threads) | calls |\n|---|---|---|")
    for stage, ms, calls in stage_times(stats, requests):
        depth = (len(stage) - len(stage.lstrip())) // 2
        print(f"| {'· ' * depth}{stage.strip()} | {ms:.2f} | {calls} |")
    print()
    idle = sum(
        row[2] for (_, _, function), row in stats.stats.items() if function in IDLE
    )  # waiting for sockets or for work is not cost
    print(f"waiting (select/poll/condition waits, all threads): {idle * 1000 / requests:.2f} ms per request")
    print()
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    sys.exit(main())

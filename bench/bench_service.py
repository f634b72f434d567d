"""Scoring service benchmark: raw in-process scoring vs the HTTP service, same images, same machine, one run.

Two baselines in the same run, same onnxruntime session settings:
- "inference only": `model.infer` (one `session.run`) on tensors decoded and pre-processed beforehand, from 1
  and 2 threads: what the network alone allows on this machine;
- "raw": decode + pre-process + infer with the same scoring core in this process (`decode_image`,
  `model.preprocess`, `model.infer`), no HTTP, no JSON.
Then the real service (`python -m edgevision serve`, waitress) is started and driven over keep-alive HTTP
connections at concurrency 1 and 4 with the same images. Reports img/s, p50/p99 latency, every rate as a
fraction of raw and of inference only, and the service's RSS from /proc.

    .venv/bin/python bench/bench_service.py [--seconds 8] [--threads N] [--intra-op 1] [--max-predictions 0]
        [--model DIR]

Targets (issue 2): service >= 0.85x raw at concurrency 4, p50 <= raw + 3 ms at concurrency 1, RSS <= 150 MB.
Targets (issue 16): raw time per image <= 1.5x inference only (1 thread); service at concurrency 4 >= 0.45x
inference only at 2 threads.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.request import urlopen

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgevision.demo import demo_photos  # noqa: E402
from edgevision.models import decode_image, load_model  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one by default), from /proc."""
    fields = Path(f"/proc/{pid or 'self'}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Row:
    """One configuration (inference only, raw or HTTP; a concurrency), measured over several interleaved slices."""

    def __init__(self, name: str, call, concurrency: int, server: int | None = None, inputs: list | None = None):
        self.name, self.call, self.concurrency, self.server = name, call, concurrency, server
        self.inputs = inputs  # what `call` takes, cycled; None: the JPEG bytes
        self.latencies: list[float] = []
        self.elapsed = self.client_cpu = self.server_cpu = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.elapsed

    def p(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000

    def warm_up(self, images: list[bytes]) -> None:
        for image in self.inputs or images:  # first-touch allocations, onnxruntime arenas, connections
            self.call(image)

    def slice(self, images: list[bytes], seconds: float) -> None:
        """Call from `concurrency` threads, cycling through the inputs, for about `seconds`."""
        images = self.inputs or images
        lock = threading.Lock()
        deadline = time.perf_counter() + seconds

        def worker(offset: int) -> None:
            i, local = offset, []
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                self.call(images[i % len(images)])
                local.append(time.perf_counter() - started)
                i += 1
            with lock:
                self.latencies.extend(local)

        started, cpu = time.perf_counter(), cpu_seconds()
        server_cpu = cpu_seconds(self.server) if self.server else 0.0
        with ThreadPoolExecutor(self.concurrency) as pool:
            list(pool.map(worker, range(self.concurrency)))
        self.elapsed += time.perf_counter() - started
        self.client_cpu += cpu_seconds() - cpu
        if self.server:
            self.server_cpu += cpu_seconds(self.server) - server_cpu

    def line(self, inference: Row, baseline: Row | None = None) -> str:
        """A table row; rates also as fractions of raw (same concurrency) and of inference only."""
        ratio = f"{self.rate / baseline.rate:.2f}x" if baseline else "-"
        client = self.client_cpu / self.count * 1000
        cpu = f"{self.server_cpu / self.count * 1000:.1f} + {client:.1f}" if self.server else f"{client:.1f}"
        return (
            f"| {self.name} | {self.count} | {self.rate:.1f} | {ratio} | {self.rate / inference.rate:.2f}x"
            f" ({inference.concurrency}) | {self.p(50):.1f} | {self.p(99):.1f} | {cpu} |"
        )


class HttpClient:
    """One keep-alive connection per thread; parses the JSON answer like a real client would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def __call__(self, image: bytes) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", "/image", body=image, headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        json.loads(body)


def start_service(port: int, args: argparse.Namespace) -> subprocess.Popen:
    env = {
        **os.environ,
        "THREADS": str(args.threads or ""),  # empty: the service default
        "INTRA_OP_THREADS": str(args.intra_op),
        "MAX_PREDICTIONS": str(args.max_predictions),
        **({"MODEL_DIR": str(Path(args.model).resolve())} if args.model else {}),
        **dict(item.split("=", 1) for item in args.env),
    }
    command = [sys.executable, "-m", "edgevision", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"the service exited with {process.returncode}") from None
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the service did not start within 60 s")


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def machine() -> str:
    import onnxruntime

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, onnxruntime {onnxruntime.__version__},"
        f" {platform.system()} {platform.release()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per row")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved slices per row")
    parser.add_argument("--threads", type=int, help="service HTTP threads (THREADS; default: the service's)")
    parser.add_argument("--intra-op", type=int, default=1, help="onnxruntime threads per inference, both sides")
    parser.add_argument("--max-predictions", type=int, default=0, help="service MAX_PREDICTIONS (0 = all)")
    parser.add_argument("--model", metavar="DIR", help="model folder for every row (default: the bundled model)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="more service settings")
    args = parser.parse_args(argv)

    images = [path.read_bytes() for path in demo_photos()]
    model = load_model(args.model, intra_op_threads=args.intra_op)

    def raw(image: bytes):
        return model.infer(model.preprocess(decode_image(image))[np.newaxis])

    tensors = [model.preprocess(decode_image(image))[np.newaxis] for image in images]
    infer1 = Row("inference only, 1 thread", model.infer, 1, inputs=tensors)
    infer2 = Row("inference only, 2 threads", model.infer, 2, inputs=tensors)
    raw1 = Row("raw in-process, 1 thread", raw, 1)
    raw4 = Row("raw in-process, 4 threads", raw, 4)

    port = free_port()
    service = start_service(port, args)
    try:
        client = HttpClient(port)
        http1 = Row("HTTP service, concurrency 1", client, 1, service.pid)
        http4 = Row("HTTP service, concurrency 4", client, 4, service.pid)
        rows = (infer1, raw1, http1, infer2, raw4, http4)
        for row in rows:
            row.warm_up(images)
        # Short interleaved slices: load from other processes on the machine hits every row alike.
        for _ in range(args.rounds):
            for row in rows:
                row.slice(images, args.seconds / args.rounds)
        rss, peak = rss_mb(service.pid)
        threads = json.loads(urlopen(f"http://127.0.0.1:{port}/health").read()).get("settings", {}).get("THREADS")
    finally:
        service.terminate()
        service.wait(10)

    print(f"machine: {machine()}; load average during the run: {os.getloadavg()[1]:.1f} (5 min)")
    print(
        f"images: {len(images)} bundled photos ({sum(map(len, images)) / len(images) / 1024:.0f} kB JPEG on average);"
        f" service THREADS={threads}, INTRA_OP_THREADS={args.intra_op} (raw too),"
        f" MAX_PREDICTIONS={args.max_predictions}, model {model.model_id};"
        f" {args.seconds:g} s per row in {args.rounds} interleaved slices"
    )
    print()
    print(
        "| run | requests | img/s | vs raw (same concurrency) | vs inference only (its threads) | p50 ms | p99 ms"
        " | CPU ms/img (service + client) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(infer1.line(infer1))
    print(infer2.line(infer2))
    print(raw1.line(infer1))
    print(raw4.line(infer2))
    print(http1.line(infer1, raw1))
    print(http4.line(infer2, raw4))
    print()
    best_raw = max(raw1, raw4, key=lambda r: r.rate)
    checks = [
        (
            f"service at concurrency 4 >= 0.85x raw ({http4.rate / best_raw.rate:.2f}x the best raw row)",
            http4.rate >= 0.85 * best_raw.rate,
        ),
        (
            f"p50 at concurrency 1 <= raw + 3 ms ({http1.p(50):.1f} vs {raw1.p(50):.1f} + 3)",
            http1.p(50) <= raw1.p(50) + 3,
        ),
        (f"service RSS <= 150 MB (now {rss:.0f} MB, peak {peak:.0f} MB)", peak <= 150),
    ]
    checks += [
        (
            f"raw time per image <= 1.5x inference only, 1 thread ({infer1.rate / raw1.rate:.2f}x:"
            f" {1000 / raw1.rate:.1f} vs {1000 / infer1.rate:.1f} ms)",
            infer1.rate / raw1.rate <= 1.5,
        ),
        (
            f"service at concurrency 4 >= 0.45x inference only at 2 threads ({http4.rate / infer2.rate:.2f}x)",
            http4.rate >= 0.45 * infer2.rate,
        ),
    ]
    for text, ok in checks:
        print(f"- {'PASS' if ok else 'MISS'}: {text}")
    overhead = (http1.server_cpu / http1.count - raw1.client_cpu / raw1.count) * 1000
    client = http1.client_cpu / http1.count * 1000
    print(f"- service CPU per image over raw at concurrency 1: {overhead:+.1f} ms (client: {client:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

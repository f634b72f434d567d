"""CPU per request of what the service adds around the scoring core, each part measured alone in this process.

- the JSON answer (`PredictionWriter.body`) on the bundled model's real outputs for the bundled photos: the
  float32 vector (numpy-formatted texts, what the service writes) and the same values as float64 (Python's
  float repr, the writer's fallback and what it wrote for every answer before);
- the client's `json.loads` of either answer;
- Flask: the real app's WSGI call for `POST /image` with `classify()` replaced by a precomputed answer,
  against a bare WSGI callable that only matches the route, counts the metrics and answers (the most a
  fast path in front of Flask could save).

    .venv/bin/python bench/bench_overhead.py [--repeats 5] [--calls 400]

Best of `--repeats` runs of `--calls` calls each, in process CPU time (`time.process_time`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgevision.classifier.app import create_app  # noqa: E402
from edgevision.classifier.response import PredictionWriter  # noqa: E402
from edgevision.classifier.settings import ClassifierSettings  # noqa: E402
from edgevision.demo import demo_photos  # noqa: E402
from edgevision.models import decode_image, load_model  # noqa: E402


def best_ms(call: Callable[[int], object], repeats: int, calls: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for i in range(calls):
            call(i)
        best = min(best, time.process_time() - started)
    return best / calls * 1e3


def post_environ(body: bytes) -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/image",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/octet-stream",
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def wsgi_call(app, body: bytes) -> None:
    result = app(post_environ(body), lambda status, headers, exc_info=None: None)
    b"".join(result)
    getattr(result, "close", lambda: None)()


def writer_rows(repeats: int, calls: int) -> list[tuple[str, float]]:
    model = load_model(None, intra_op_threads=1)
    outputs = [model.infer(model.preprocess(decode_image(p.read_bytes()))[np.newaxis])[0] for p in demo_photos()]
    writer = PredictionWriter()
    rows = []
    for name, vectors in (
        ("float32 (numpy texts)", outputs),
        ("float64 (repr)", [o.astype(np.float64) for o in outputs]),
    ):
        answers = [writer.body(model, v) for v in vectors]
        size = sum(map(len, answers)) / len(answers) / 1000
        rows.append(
            (
                f"JSON answer, {name}, {size:.1f} kB",
                best_ms(lambda i, v=vectors: writer.body(model, v[i % 10]), repeats, calls),
            )
        )
        rows.append((f"client json.loads, {name}", best_ms(lambda i, a=answers: json.loads(a[i % 10]), repeats, calls)))
    return rows


def flask_rows(repeats: int, calls: int) -> list[tuple[str, float]]:
    app = create_app(ClassifierSettings())
    service = app.extensions["edgevision.classifier"]
    photo = demo_photos()[0].read_bytes()
    answer = service.classify(photo, service.models.default)
    service.classify = lambda data, model: answer  # everything but the core

    def bare(environ, start_response):
        endpoint, _ = app.url_map.bind_to_environ(environ).match(method="POST")
        data = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        started = time.perf_counter()
        text = service.classify(data, service.models.get(None)).encode()
        service.metrics.requests.labels(endpoint, "200").inc()
        service.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(text)))])
        return [text]

    flask_ms = best_ms(lambda i: wsgi_call(app, photo), repeats, calls)
    bare_ms = best_ms(lambda i: wsgi_call(bare, photo), repeats, calls)
    return [("Flask app, POST /image, classify() stubbed", flask_ms), ("bare WSGI: route match + metrics", bare_ms)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args(argv)
    print(f"load average {' / '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for name, ms in writer_rows(args.repeats, args.calls) + flask_rows(args.repeats, args.calls):
        print(f"{name:52s} {ms:6.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`edgevision serve` (the ImageClassifierService module) and `edgevision predict` (score files, print JSON)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="serve a model over the Custom Vision prediction HTTP API",
        description="Serve a model over the Custom Vision export container's HTTP API. Every option has an"
        " environment variable (MODEL_DIR, PUBLISHED_DIR, HOST, PORT, ...; see docs/scoring-service.md).",
    )
    serve.add_argument("--model", metavar="DIR", help="model folder or .onnx file (env MODEL_DIR; default: bundled)")
    serve.add_argument("--published", metavar="DIR", help="published iterations folder (env PUBLISHED_DIR)")
    serve.add_argument("--host", help="address to listen on (env HOST; default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="TCP port (env PORT; default 80)")
    serve.add_argument(
        "--threads", type=int, help="HTTP worker threads (env THREADS; default: one per core, at most 4)"
    )
    serve.set_defaults(func=run_serve)

    predict = subparsers.add_parser(
        "predict", help="score image files and print the predictions as JSON", description="Score image files."
    )
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, BMP, GIF)")
    predict.add_argument("--model", metavar="DIR", help="model folder or .onnx file (default: bundled)")
    predict.add_argument("--top", type=int, default=5, help="predictions per image, highest first (0 = all)")
    predict.set_defaults(func=run_predict)


def run_serve(args: argparse.Namespace) -> int:
    from edgevision.classifier.server import serve
    from edgevision.classifier.settings import ClassifierSettings

    settings = ClassifierSettings.from_env(
        model_dir=args.model, published_dir=args.published, host=args.host, port=args.port, threads=args.threads
    )
    serve(settings)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from edgevision.contracts import ErrorBody, encode
    from edgevision.models import ImageDecodeError, load_model

    model = load_model(args.model)
    results, failed = [], 0
    for name in args.images:
        path = Path(name)
        try:
            predictions = model.predict(path.read_bytes())
        except OSError as exc:
            failed += 1
            error = ErrorBody(code="FileNotReadable", message=exc.strerror or str(exc))
            results.append({"image": name, "error": encode(error)})
            continue
        except ImageDecodeError as exc:
            failed += 1
            results.append({"image": name, "error": encode(ErrorBody(code=exc.code, message=exc.message))})
            continue
        if args.top > 0:
            predictions = predictions[: args.top]
        results.append({"image": name, "predictions": [p.to_json() for p in predictions]})
    print(json.dumps({"modelId": model.model_id, "results": results}, indent=2))
    return 1 if failed else 0

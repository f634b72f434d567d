"""The scoring service as a Flask application factory: the Custom Vision export container's HTTP API.

Every prediction route (export container aliases and the cloud v3.0/v3.1 routes) goes to one of two views,
`image` and `url`; errors are always `{"code", "message"}` JSON with a 4xx status for anything a client did.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from edgevision import __version__
from edgevision.classifier.auth import require_key
from edgevision.classifier.errors import ApiError, bad_request
from edgevision.classifier.fetch import fetch_image
from edgevision.classifier.forms import ImageRequest, form_field_bytes
from edgevision.classifier.metrics import ServiceMetrics
from edgevision.classifier.registry import ModelRegistry
from edgevision.classifier.response import PredictionWriter
from edgevision.classifier.settings import ClassifierSettings
from edgevision.contracts import dumps
from edgevision.keyguard import KeyGuard
from edgevision.models import ImageDecodeError, ImageModel, decode_image, load_model

log = logging.getLogger(__name__)

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and headers on top of the image itself
JSON_TYPES = {"application/json", "text/json", ""}
PREDICTION_ENDPOINTS = {"image", "url", "detect"}
CLOUD_PREFIX = re.compile(r"^/customvision/v3\.[01]/prediction(?=/)", re.IGNORECASE)
HTTP_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "BadRequestImageSizeBytes",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
}


def prediction_rules(kind: str) -> list[str]:
    """Every path that classifies an image given as `kind` ("image" or "url")."""
    named = "<project>/classify/iterations/<name>"
    rules = [f"/{kind}", f"/<project>/{kind}", f"/{named}/{kind}"]
    rules += [f"/customvision/{version}/prediction/{named}/{kind}" for version in ("v3.0", "v3.1")]
    return _with_nostore(rules, skip=f"/{kind}")


def detect_rules(kind: str) -> list[str]:
    """Object detection paths: answered with a clear 400, this service serves classification models."""
    named = "<project>/detect/iterations/<name>"
    rules = [f"/{named}/{kind}"]
    rules += [f"/customvision/{version}/prediction/{named}/{kind}" for version in ("v3.0", "v3.1")]
    return _with_nostore(rules)


def _with_nostore(rules: list[str], skip: str = "") -> list[str]:
    return [variant for rule in rules for variant in ([rule] if rule == skip else [rule, f"{rule}/nostore"])]


@dataclass(frozen=True)
class PredictionMade:
    """One answered prediction, for an observer that keeps them (the portal stores those made without /nostore)."""

    published_name: str
    image: bytes
    body: str
    store: bool
    application: str | None


class ClassifierService:
    """What the views share: settings, the models and the metrics."""

    def __init__(self, settings: ClassifierSettings, models: ModelRegistry, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.models = models
        self.metrics = metrics
        self.writer = PredictionWriter()
        self.on_prediction: Callable[[PredictionMade], None] | None = None

    def classify(self, data: bytes, model: ImageModel) -> str:
        """Image bytes -> the Custom Vision `ImagePrediction` JSON text."""
        if len(data) > self.settings.max_image_bytes:
            raise _too_large(self.settings.max_image_bytes)
        started = time.perf_counter()
        try:
            image = decode_image(data, max_pixels=self.settings.max_image_pixels)
        except ImageDecodeError as exc:
            raise bad_request(exc.code, exc.message) from None
        decoded = time.perf_counter()
        probabilities = model.infer(model.preprocess(image)[np.newaxis])[0]
        self.metrics.decode.observe(decoded - started)
        self.metrics.inference.labels(model.model_id).observe(time.perf_counter() - decoded)
        return self.writer.body(model, probabilities, self.settings.max_predictions)


def create_app(settings: ClassifierSettings | None = None, model: ImageModel | None = None) -> Flask:
    """The WSGI app. `model` (already loaded) wins over `settings.model_dir`."""
    settings = settings or ClassifierSettings.from_env()
    if model is None:
        model = load_model(settings.model_dir, intra_op_threads=settings.intra_op_threads)
    models = ModelRegistry(model, settings.published_dir, intra_op_threads=settings.intra_op_threads)
    service = ClassifierService(settings, models, ServiceMetrics())
    service.metrics.set_model(model.model_id, len(model.labels))

    app = Flask(__name__)
    app.request_class = ImageRequest
    app.json.sort_keys = False  # keep the Custom Vision field order
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_image_bytes + FORM_OVERHEAD,
        MAX_FORM_MEMORY_SIZE=settings.max_image_bytes + FORM_OVERHEAD,
    )
    app.extensions["edgevision.classifier"] = service
    _register_routes(app, service)
    _register_hooks(app, service)
    app.wsgi_app = CloudPaths(app.wsgi_app, CLOUD_PREFIX)  # type: ignore[method-assign]
    return app


# -- routes ------------------------------------------------------------------------------------------------


def _register_routes(app: Flask, service: ClassifierService) -> None:
    settings = service.settings

    def image(project: str = "", name: str = "") -> Response:
        return _prediction(service, _image_bytes(settings.max_image_bytes), name)

    def url(project: str = "", name: str = "") -> Response:
        if not settings.url_enabled:
            raise ApiError(404, "NotFound", "the /url routes are switched off on this service (URL_ENABLED=false)")
        data = fetch_image(
            _url_from_body(),
            max_bytes=settings.max_image_bytes,
            timeout=settings.url_timeout,
            allow_private=settings.url_allow_private,
        )
        return _prediction(service, data, name)

    def detect(project: str = "", name: str = "") -> Response:
        raise bad_request(
            "BadRequestNotSupported",
            "this service serves a classification model; object detection routes are not supported",
        )

    for kind, view in (("image", image), ("url", url)):
        for rule in prediction_rules(kind):
            app.add_url_rule(rule, endpoint=kind, view_func=view, methods=["POST"])
    for kind in ("image", "url"):
        for rule in detect_rules(kind):
            app.add_url_rule(rule, endpoint="detect", view_func=detect, methods=["POST"])

    @app.get("/")
    def index() -> Response:
        text = (
            f"edgevision ImageClassifierService {__version__}: POST an image to /image (raw body or multipart"
            ' field imageData) or {"url": ...} to /url. API: /openapi.json, health: /health, metrics: /metrics\n'
        )
        return Response(text, mimetype="text/plain")

    @app.get("/health")
    def health() -> Response:
        body = {
            "status": "ok",
            "modelId": service.models.default.model_id,
            "model": service.models.default.describe(),
            "published": service.models.loaded(),
            "settings": service.settings.reported(),  # PREDICTION_KEY shows as ********** when set
            "version": __version__,
        }
        return app.json.response(body)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(service.metrics.exposition(), mimetype="text/plain; version=0.0.4")

    @app.get("/openapi.json")
    def openapi() -> Response:
        from edgevision.classifier.openapi import openapi_spec

        return app.json.response(openapi_spec(app, service.settings))


def _prediction(service: ClassifierService, data: bytes, name: str) -> Response:
    model = service.models.get(name or None)
    g.model_id = model.model_id
    body = service.classify(data, model)
    if service.on_prediction is not None:
        store = not request.path.endswith("/nostore")
        service.on_prediction(PredictionMade(name, data, body, store, request.args.get("application")))
    return Response(body, mimetype="application/json")


def _image_bytes(limit: int) -> bytes:
    """The image of an /image request: multipart/form field `imageData`, or the raw body."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        data = _form_image(limit)
        if data is None:
            raise bad_request("BadRequestImageStream", "the form has no imageData field")
    elif mimetype == "application/x-www-form-urlencoded":
        # `curl --data-binary @photo.jpg` labels a raw image this way: no imageData field = the raw body,
        # as the export container does.
        raw = request.get_data(cache=True)
        data = _form_image(limit)
        data = raw if data is None else data
    elif mimetype in {"", "application/octet-stream"} or mimetype.startswith("image/"):
        data = request.get_data(cache=False)
    else:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"content type {mimetype!r} is not accepted: send the image as application/octet-stream, image/*,"
            " or multipart/form-data with an imageData field",
        )
    if len(data) > limit:
        raise _too_large(limit)
    return data


def _form_image(limit: int) -> bytes | None:
    upload = request.files.get("imageData")
    if upload is not None:
        return upload.read(limit + 1)
    if "imageData" in request.form:
        return form_field_bytes(request.form["imageData"])
    return None


def _url_from_body() -> str:
    mimetype = request.mimetype
    if mimetype not in JSON_TYPES and not mimetype.endswith("+json"):
        raise ApiError(415, "UnsupportedMediaType", f'content type {mimetype!r}: send JSON {{"url": "..."}}')
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise bad_request("BadRequest", 'the body is not valid JSON: send {"url": "..."}') from None
    fields = {str(k).lower(): v for k, v in body.items()} if isinstance(body, dict) else {}
    url = fields.get("url")
    if not isinstance(url, str) or not url.strip():
        raise bad_request("BadRequestImageUrl", 'the body must be JSON {"url": "http(s)://..."}')
    return url.strip()


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "BadRequestImageSizeBytes", f"the image is larger than {limit:,} bytes (MAX_IMAGE_BYTES)")


# -- hooks: key, metrics, errors -----------------------------------------------------------------------------


def _register_hooks(app: Flask, service: ClassifierService) -> None:
    key = service.settings.prediction_key.get_secret_value().encode() if service.settings.prediction_key else None
    metrics = service.metrics
    guard = KeyGuard()

    @app.before_request
    def check_key() -> None:
        g.started = time.perf_counter()
        if key is None or request.endpoint not in PREDICTION_ENDPOINTS:
            return
        require_key("Prediction-Key", key, guard)

    @app.after_request
    def record(response: Response) -> Response:
        route = request.endpoint or "unmatched"
        response.headers["X-Model-Id"] = g.get("model_id", service.models.default.model_id)
        metrics.requests.labels(route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - g.get("started", time.perf_counter()))
        return response

    def answer(error: ApiError) -> Response:
        metrics.errors.labels(error.code).inc()
        if error.status >= 500:
            log.error("%s %s -> %s %s", request.method, request.path, error.status, error.message)
        return Response(dumps(error.body()), status=error.status, mimetype="application/json", headers=error.headers)

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return answer(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = HTTP_CODES.get(status, (error.name or "Error").replace(" ", ""))
        message = error.description or error.name
        if status == 413:
            message = f"the request is larger than {service.settings.max_image_bytes:,} bytes (MAX_IMAGE_BYTES)"
        return answer(ApiError(status, code, message))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return answer(ApiError(500, "ErrorPrediction", f"internal error ({type(error).__name__}); see the log"))


class CloudPaths:
    """Paths as real clients send them: `//customvision/...` when their endpoint ends in '/' (the SDK joins it
    with a path that starts with '/'), and the `/customvision/v3.x/<service>` prefix (`prefix`) in any case, as
    the cloud service accepts."""

    def __init__(self, wsgi_app, prefix: re.Pattern[str]) -> None:
        self.wsgi_app = wsgi_app
        self.prefix = prefix

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        match = self.prefix.match(path)
        if match:
            path = match.group(0).lower() + path[match.end() :]
        environ["PATH_INFO"] = path
        return self.wsgi_app(environ, start_response)

"""The HTTP surface: the Training API under /customvision/v3.3/training and /customvision/v3.4-preview/training,
the Prediction API (the scoring service's own routes, one app per project) and signed file downloads.

Errors are `{"code", "message"}` JSON with the Custom Vision codes; nothing a client sends gives a traceback.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
import threading

from flask import Blueprint, Flask, Response, g, request, send_file
from werkzeug.exceptions import HTTPException

from edgevision import __version__
from edgevision.classifier.app import HTTP_CODES, CloudPaths
from edgevision.classifier.auth import require_key
from edgevision.classifier.forms import ImageRequest, form_field_bytes
from edgevision.keyguard import KeyGuard
from edgevision.portal import pages, shapes
from edgevision.portal.db import UnstorableValue
from edgevision.portal.errors import ApiError, bad_request, not_found
from edgevision.portal.iterations import Iterations
from edgevision.portal.service import NewImage, Portal
from edgevision.portal.settings import PortalSettings

log = logging.getLogger(__name__)

TRAINING_PREFIX = "/customvision/<any('v3.3', 'v3.4-preview'):version>/training"
CLOUD_PREFIX = re.compile(r"^/customvision/v3\.[0-4](?:-preview)?/(?:training|prediction)(?=/)", re.IGNORECASE)


def create_app(settings: PortalSettings, portal: Portal | None = None) -> Flask:
    portal = portal or Portal(settings)
    iterations = Iterations(portal)
    keys = {"training": settings.key("training"), "prediction": settings.key("prediction")}
    guards = {"training": KeyGuard(), "prediction": KeyGuard()}  # the pages' login guesses the training key too
    app = Flask(__name__)
    app.request_class = ImageRequest
    app.json.sort_keys = False
    app.config.update(MAX_CONTENT_LENGTH=settings.max_request_bytes, MAX_FORM_MEMORY_SIZE=settings.max_request_bytes)
    app.extensions["edgevision.portal"] = (portal, iterations)
    if settings.capture_dir is not None:
        from edgevision.portal.captures import CaptureImporter

        importer = CaptureImporter(portal, iterations, settings.capture_dir, settings.capture_project)
        app.extensions["edgevision.portal.captures"] = importer
    predictors = _Predictors(settings, portal, iterations, keys["prediction"])

    training = Blueprint("training", __name__, url_prefix=TRAINING_PREFIX)
    _training_routes(training, portal, iterations)
    app.register_blueprint(training)
    _prediction_routes(app, portal, iterations, predictors, keys["prediction"], guards["prediction"])
    _file_routes(app, portal, iterations, keys["training"])
    app.register_blueprint(pages.create_blueprint(keys["training"], guards["training"]))

    @app.before_request
    def authenticate() -> None:
        portal.use_links(shapes.Links(request.host_url.rstrip("/"), keys["training"]))
        if request.blueprint in {"training", "pages"}:
            pages.refuse_other_sites(keyless=keys["training"] is None, loopback=settings.loopback_only)
        if request.blueprint == "training" and keys["training"] is not None:
            if "Training-Key" in request.headers:  # scripts and the SDK: the key, no cookie, no CSRF token
                require_key("Training-Key", keys["training"], guards["training"])
            else:  # the pages: the login's session cookie, and a CSRF token on writes
                pages.require_session(keys["training"])

    @app.get("/health")
    def health() -> Response:
        return app.json.response({"status": "ok", "version": __version__, "schemaVersion": portal.db.version()})

    _error_handlers(app)
    app.wsgi_app = CloudPaths(app.wsgi_app, CLOUD_PREFIX)  # type: ignore[method-assign]
    return app


# -- request helpers -------------------------------------------------------------------------------------------


def _arg(name: str, default: str | None = None) -> str | None:
    value = request.args.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in request.args.items() if k.lower() == lowered), None)
    return default if value is None else value


def _list_arg(name: str) -> list[str]:
    values = request.args.getlist(name) or ([_arg(name)] if _arg(name) else [])
    return [part.strip() for value in values for part in str(value).split(",") if part.strip()]


def _bool_arg(name: str) -> bool:
    return (_arg(name, "false") or "").strip().lower() in {"true", "1", "yes"}


def _int_arg(name: str, default: int) -> int:
    raw = _arg(name)
    try:
        return default if raw in (None, "") else int(raw)
    except ValueError:
        raise bad_request("BadRequestInvalid", f"{name} must be a whole number (got {raw!r})") from None


def _float_arg(name: str, default: float) -> float:
    raw = _arg(name)
    try:
        return default if raw in (None, "") else float(raw)
    except ValueError:
        raise bad_request("BadRequestInvalid", f"{name} must be a number (got {raw!r})") from None


def _json_body(required: bool = True) -> dict:
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise bad_request("BadRequestRequiredParamIsNull", "the request needs a JSON body")
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("BadRequest", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("BadRequest", "the body must be a JSON object")
    return body


def _form_images() -> list[bytes]:
    """Every part of a multipart body: file parts and parts without a filename (what the SDK sends)."""
    if request.mimetype != "multipart/form-data":
        data = request.get_data(cache=False)
        return [data] if data else []
    parts = [f.read() for key in request.files for f in request.files.getlist(key)]
    parts += [form_field_bytes(v) for key in request.form for v in request.form.getlist(key)]
    return parts


def _decode_contents(value) -> bytes | None:
    if isinstance(value, list):  # a JSON array of byte values
        try:
            return bytes(value)
        except (TypeError, ValueError):
            return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return None


def _no_content() -> Response:
    return Response(status=204)


# -- the Training API -------------------------------------------------------------------------------------------


def _training_routes(bp: Blueprint, portal: Portal, iterations: Iterations) -> None:
    json_response = lambda body, status=200: Response(json.dumps(body), status, mimetype="application/json")  # noqa: E731

    @bp.get("/domains")
    def domains(version):
        return json_response(portal.domains())

    @bp.get("/domains/<domain_id>")
    def domain(version, domain_id):
        return json_response(portal.domain(domain_id))

    @bp.get("/projects")
    def projects(version):
        return json_response(portal.projects())

    @bp.post("/projects")
    def create_project(version):
        return json_response(
            portal.create_project(
                _arg("name"),
                _arg("description"),
                _arg("domainId"),
                _arg("classificationType"),
                _list_arg("targetExportPlatforms"),
            )
        )

    @bp.get("/projects/<project_id>")
    def project(version, project_id):
        return json_response(portal.project(project_id))

    @bp.patch("/projects/<project_id>")
    def update_project(version, project_id):
        return json_response(portal.update_project(project_id, _json_body()))

    @bp.delete("/projects/<project_id>")
    def delete_project(version, project_id):
        portal.delete_project(project_id)
        return _no_content()

    # tags
    @bp.get("/projects/<project_id>/tags")
    def tags(version, project_id):
        return json_response(portal.tags(project_id, _arg("iterationId")))

    @bp.post("/projects/<project_id>/tags")
    def create_tag(version, project_id):
        return json_response(portal.create_tag(project_id, _arg("name"), _arg("description"), _arg("type")))

    @bp.get("/projects/<project_id>/tags/<tag_id>")
    def tag(version, project_id, tag_id):
        return json_response(portal.tag(project_id, tag_id, _arg("iterationId")))

    @bp.patch("/projects/<project_id>/tags/<tag_id>")
    def update_tag(version, project_id, tag_id):
        return json_response(portal.update_tag(project_id, tag_id, _json_body()))

    @bp.delete("/projects/<project_id>/tags/<tag_id>")
    def delete_tag(version, project_id, tag_id):
        portal.delete_tag(project_id, tag_id)
        return _no_content()

    # images in
    @bp.post("/projects/<project_id>/images")
    def create_from_data(version, project_id):
        portal.project_row(project_id)
        batch = [NewImage(data) for data in _form_images()]
        status, summary = portal.create_images(project_id, batch, _list_arg("tagIds"), {})
        return json_response(summary, status)

    @bp.post("/projects/<project_id>/images/files")
    def create_from_files(version, project_id):
        body = _json_body()
        entries = body.get("images") or []
        if not isinstance(entries, list):
            raise bad_request("BadRequestImageBatch", "images must be a list")
        batch = []
        for entry in entries:
            data = _decode_contents(entry.get("contents")) if isinstance(entry, dict) else None
            name = str(entry.get("name") or "") if isinstance(entry, dict) else ""
            tags = tuple((entry.get("tagIds") or []) if isinstance(entry, dict) else ())
            error = None if data is not None else ("ErrorImageFormat", "contents is not base64 image data")
            batch.append(NewImage(data, name, tags, error))
        status, summary = portal.create_images(project_id, batch, body.get("tagIds") or [], body.get("metadata") or {})
        return json_response(summary, status)

    @bp.post("/projects/<project_id>/images/urls")
    def create_from_urls(version, project_id):
        body = _json_body()
        entries = body.get("images") or []
        if len(entries) > 64:
            raise bad_request("BadRequestExceededBatchSize", f"{len(entries)} images in one batch; at most 64")
        portal.project_row(project_id)
        batch = [_fetched(portal.settings, entry) for entry in entries]
        status, summary = portal.create_images(project_id, batch, body.get("tagIds") or [], body.get("metadata") or {})
        return json_response(summary, status)

    @bp.post("/projects/<project_id>/images/predictions")
    def create_from_predictions(version, project_id):
        body = _json_body()
        entries = body.get("images") or []
        if len(entries) > 64:
            raise bad_request("BadRequestExceededBatchSize", f"{len(entries)} images in one batch; at most 64")
        project = portal.project_row(project_id)
        batch = iterations.prediction_images(project["id"], entries, body.get("tagIds") or [])
        status, summary = portal.create_images(project_id, batch, body.get("tagIds") or [], body.get("metadata") or {})
        return json_response(summary, status)

    # images out
    def listing(project_id: str, status: str, count: bool = False):
        return portal.list_images(
            project_id,
            status=status,
            tag_ids=_list_arg("tagIds"),
            iteration_id=_arg("iterationId"),
            order=_arg("orderBy"),
            take=_int_arg("take", 50),
            skip=_int_arg("skip", 0),
            count=count,
        )

    @bp.get("/projects/<project_id>/images")
    def images(version, project_id):
        return json_response(listing(project_id, _arg("taggingStatus", "All")))

    @bp.get("/projects/<project_id>/images/count")
    def image_count(version, project_id):
        return json_response(listing(project_id, _arg("taggingStatus", "All"), count=True))

    @bp.get("/projects/<project_id>/images/tagged")
    def tagged(version, project_id):
        return json_response(listing(project_id, "Tagged"))

    @bp.get("/projects/<project_id>/images/tagged/count")
    def tagged_count(version, project_id):
        return json_response(listing(project_id, "Tagged", count=True))

    @bp.get("/projects/<project_id>/images/untagged")
    def untagged(version, project_id):
        return json_response(listing(project_id, "Untagged"))

    @bp.get("/projects/<project_id>/images/untagged/count")
    def untagged_count(version, project_id):
        return json_response(listing(project_id, "Untagged", count=True))

    @bp.get("/projects/<project_id>/images/id")
    def images_by_id(version, project_id):
        project = portal.project_row(project_id)
        return json_response(portal.images_by_ids(project["id"], _list_arg("imageIds")))

    @bp.delete("/projects/<project_id>/images")
    def delete_images(version, project_id):
        portal.delete_images(project_id, _list_arg("imageIds"), _bool_arg("allImages"), _bool_arg("allIterations"))
        return _no_content()

    @bp.post("/projects/<project_id>/images/tags")
    def add_tags(version, project_id):
        entries = _json_body().get("tags") or []
        pairs = [(str(e.get("imageId", "")), str(e.get("tagId", ""))) for e in entries if isinstance(e, dict)]
        return json_response(portal.add_image_tags(project_id, pairs))

    @bp.delete("/projects/<project_id>/images/tags")
    def remove_tags(version, project_id):
        portal.remove_image_tags(project_id, _list_arg("imageIds"), _list_arg("tagIds"))
        return _no_content()

    # training and iterations
    @bp.post("/projects/<project_id>/train")
    def train(version, project_id):
        body = _json_body(required=False)
        selected = body.get("selectedTags") or []
        iteration = iterations.train(
            project_id, _arg("trainingType"), _int_arg("reservedBudgetInHours", 0), _bool_arg("forceTrain"), selected
        )
        return json_response(iteration)

    @bp.get("/projects/<project_id>/iterations")
    def list_iterations(version, project_id):
        return json_response(iterations.iterations(project_id))

    @bp.get("/projects/<project_id>/iterations/<iteration_id>")
    def iteration(version, project_id, iteration_id):
        return json_response(iterations.iteration(project_id, iteration_id))

    @bp.patch("/projects/<project_id>/iterations/<iteration_id>")
    def rename_iteration(version, project_id, iteration_id):
        return json_response(iterations.rename(project_id, iteration_id, _json_body()))

    @bp.delete("/projects/<project_id>/iterations/<iteration_id>")
    def delete_iteration(version, project_id, iteration_id):
        iterations.delete(project_id, iteration_id)
        return _no_content()

    @bp.get("/projects/<project_id>/iterations/<iteration_id>/performance")
    def performance(version, project_id, iteration_id):
        return json_response(iterations.performance(project_id, iteration_id, _float_arg("threshold", 0.5)))

    @bp.get("/projects/<project_id>/iterations/<iteration_id>/performance/images")
    def image_performances(version, project_id, iteration_id):
        return json_response(
            iterations.image_performances(
                project_id,
                iteration_id,
                _list_arg("tagIds"),
                _arg("orderBy"),
                _int_arg("take", 50),
                _int_arg("skip", 0),
            )
        )

    @bp.get("/projects/<project_id>/iterations/<iteration_id>/performance/images/count")
    def image_performance_count(version, project_id, iteration_id):
        return json_response(
            iterations.image_performances(project_id, iteration_id, _list_arg("tagIds"), None, 0, 0, count=True)
        )

    @bp.post("/projects/<project_id>/iterations/<iteration_id>/publish")
    def publish(version, project_id, iteration_id):
        return json_response(
            iterations.publish(
                project_id, iteration_id, _arg("publishName") or "", _arg("predictionId") or "", _bool_arg("overwrite")
            )
        )

    @bp.delete("/projects/<project_id>/iterations/<iteration_id>/publish")
    def unpublish(version, project_id, iteration_id):
        iterations.unpublish(project_id, iteration_id)
        return _no_content()

    @bp.get("/projects/<project_id>/iterations/<iteration_id>/export")
    def exports(version, project_id, iteration_id):
        return json_response(iterations.exports(project_id, iteration_id))

    @bp.post("/projects/<project_id>/iterations/<iteration_id>/export")
    def export(version, project_id, iteration_id):
        return json_response(iterations.export(project_id, iteration_id, _arg("platform") or "", _arg("flavor")))

    # quick test and stored predictions
    @bp.post("/projects/<project_id>/quicktest/image")
    def quick_test_image(version, project_id):
        images = _form_images()
        if not images:
            raise bad_request("BadRequestImageStream", "the request has no image (multipart field imageData)")
        store = _arg("store", "true").lower() != "false"
        return json_response(iterations.quick_test(project_id, images[0], _arg("iterationId"), store))

    @bp.post("/projects/<project_id>/quicktest/url")
    def quick_test_url(version, project_id):
        image = _fetched(portal.settings, _json_body())
        if image.error:
            raise bad_request("BadRequestImageUrl", image.error[1])
        store = _arg("store", "true").lower() != "false"
        return json_response(iterations.quick_test(project_id, image.data or b"", _arg("iterationId"), store))

    @bp.post("/projects/<project_id>/predictions/query")
    def query_predictions(version, project_id):
        return json_response(iterations.query_predictions(project_id, _json_body(required=False)))

    @bp.delete("/projects/<project_id>/predictions")
    def delete_predictions(version, project_id):
        iterations.delete_predictions(project_id, _list_arg("ids"))
        return _no_content()


def _fetched(settings: PortalSettings, entry) -> NewImage:
    """An image-from-URL entry, downloaded with the scoring service's guarded fetcher."""
    from edgevision.classifier.fetch import fetch_image

    url = str(entry.get("url") or "") if isinstance(entry, dict) else ""
    tags = tuple(entry.get("tagIds") or ()) if isinstance(entry, dict) else ()
    try:
        data = fetch_image(
            url,
            max_bytes=settings.max_image_bytes,
            timeout=settings.url_timeout,
            allow_private=settings.url_allow_private,
        )
    except ApiError as exc:
        status = "ErrorImageSize" if exc.status == 413 else "ErrorSource"
        return NewImage(None, url, tags, (status, exc.message))
    return NewImage(data, url, tags)


# -- prediction: the scoring service's routes, one app per project ---------------------------------------------


class _Predictors:
    """A scoring-service app per project, serving that project's published iterations."""

    def __init__(self, settings: PortalSettings, portal: Portal, iterations: Iterations, key: bytes | None) -> None:
        self.settings, self.portal, self.iterations, self.key = settings, portal, iterations, key
        self._apps: dict[str, Flask] = {}
        self._default = None
        self._lock = threading.Lock()

    def app(self, project_id: str) -> Flask:
        from edgevision.classifier.app import create_app as create_classifier
        from edgevision.classifier.settings import ClassifierSettings
        from edgevision.models import load_model

        with self._lock:
            if project_id not in self._apps:
                if self._default is None:
                    self._default = load_model(None)  # never answers: only published names are let through
                settings = ClassifierSettings(
                    published_dir=self.portal.project_dir(project_id) / "published",
                    prediction_key=self.key.decode() if self.key else None,
                    url_allow_private=self.settings.url_allow_private,
                    url_timeout=self.settings.url_timeout,
                )
                app = create_classifier(settings, self._default)
                service = app.extensions["edgevision.classifier"]
                service.on_prediction = lambda made, pid=project_id: self._stored(pid, made)
                self._apps[project_id] = app
            return self._apps[project_id]

    def _stored(self, project_id: str, made) -> None:
        if made.store:
            self.iterations.store_prediction(project_id, made.image, json.loads(made.body), made.application, "api")


def _prediction_routes(
    app: Flask, portal: Portal, iterations: Iterations, predictors: _Predictors, key: bytes | None, guard: KeyGuard
) -> None:
    def predict(version, project_id, name, kind, nostore=""):
        if key is not None:
            require_key("Prediction-Key", key, guard)
        project = portal.project_row(project_id)
        if iterations.published(project["id"], name) is None:
            raise not_found("NotFound", f"no iteration of project {project['id']} is published as {name!r}")
        g.delegated = True
        return predictors.app(project["id"])  # a WSGI app: Flask calls it with this request

    base = "/customvision/<any('v3.0', 'v3.1'):version>/prediction/<project_id>/classify/iterations/<name>"
    for suffix in ("", "/nostore"):
        app.add_url_rule(
            f"{base}/<any(image, url):kind>{suffix}", f"predict{suffix.replace('/', '_')}", predict, methods=["POST"]
        )


def _file_routes(app: Flask, portal: Portal, iterations: Iterations, secret: bytes | None) -> None:
    def check_signature() -> None:
        if secret is None:
            return
        expected = shapes.Links("", secret).sign(request.path).split("sig=")[-1]
        if not hmac.compare_digest(request.args.get("sig", "").encode(), expected.encode()):
            raise ApiError(401, "Unauthorized", "this link is not signed by this portal (or its key changed)")

    @app.get("/files/images/<sha256>/<any(original, thumbnail):kind>")
    def image_file(sha256, kind):
        check_signature()
        blob = portal.blob(sha256.lower())
        if blob is None:
            raise not_found("NotFoundImage", "no such image")
        path = (
            portal.store.thumbnail_path(blob["sha256"])
            if kind == "thumbnail"
            else portal.store.path(blob["sha256"], blob["format"])
        )
        if not path.is_file():
            raise not_found("NotFoundImage", "the image file is gone")
        return send_file(path, max_age=3600)

    @app.get("/files/exports/<iteration_id>/<file_name>")
    def export_file(iteration_id, file_name):
        check_signature()
        path = iterations.export_path(iteration_id.lower(), file_name)
        if path is None:
            raise not_found("NotFound", "no such export")
        return send_file(
            path, mimetype="application/zip", as_attachment=True, download_name=f"{iteration_id}-{file_name}"
        )


# -- errors ----------------------------------------------------------------------------------------------------


def _error_handlers(app: Flask) -> None:
    def answer(error: ApiError) -> Response:
        if error.status >= 500:
            log.error("%s %s -> %s %s", request.method, request.path, error.status, error.message)
        body = json.dumps({"code": error.code, "message": error.message})
        return Response(body, status=error.status, mimetype="application/json", headers=error.headers)

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return answer(error)

    @app.errorhandler(UnstorableValue)
    def unstorable(error: UnstorableValue) -> Response:
        return answer(bad_request("BadRequestInvalid", str(error)))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = HTTP_CODES.get(status, (error.name or "Error").replace(" ", ""))
        return answer(ApiError(status, code, error.description or error.name))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return answer(ApiError(500, "ErrorUnknown", f"internal error ({type(error).__name__}); see the portal's log"))

"""Run the app under waitress, a production WSGI server that is pure Python (small enough for a Pi)."""

from __future__ import annotations

import logging
import signal
import sys

from edgevision.classifier import bodies
from edgevision.classifier.app import FORM_OVERHEAD, ClassifierService, create_app
from edgevision.classifier.settings import ClassifierSettings
from edgevision.classifier.updates import ModelUpdater
from edgevision.errors import EdgeVisionError
from edgevision.hub import connect

log = logging.getLogger(__name__)


class ListenError(EdgeVisionError):
    """The service cannot open its port."""


def serve(settings: ClassifierSettings) -> None:
    """Load the model (ModelLoadError ends start-up with one line), then serve until SIGTERM/SIGINT."""
    import waitress

    _tune_malloc_for_loading()
    app = create_app(settings)
    _tune_malloc_for_serving()
    service = app.extensions["edgevision.classifier"]
    updater = _start_model_updates(service, settings)
    model = service.models.default
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # container stop: leave cleanly
    # "Task queue depth is N" on every busy moment: /metrics' request_seconds shows overload better.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    keep_limit = settings.max_image_bytes + FORM_OVERHEAD  # Flask's MAX_CONTENT_LENGTH
    try:
        server = waitress.create_server(
            app,
            host=settings.host,
            port=settings.port,
            threads=settings.threads,
            ident="edgevision",
            # Bodies over the limit are read and dropped (bodies.py), then Flask answers 413 JSON; bodies
            # over the cap are refused by waitress before they are read.
            max_request_body_size=max(bodies.DISCARD_CAP, keep_limit) + 1,
            channel_timeout=60,
        )
    except OSError as exc:  # port in use, privileged port, unknown address
        raise ListenError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
    bodies.install(server, keep_limit)
    log.info(
        "serving %s (%d tags) on http://%s:%d with %d threads, %d intra-op threads",
        model.model_id,
        len(model.labels),
        settings.host,
        settings.port,
        settings.threads,
        settings.intra_op_threads,
    )
    try:
        server.run()
    finally:
        server.close()
        if updater is not None:
            updater.close()


def _start_model_updates(service: ClassifierService, settings: ClassifierSettings) -> ModelUpdater | None:
    """Under IoT Edge, follow the twin's `modelUrl` + `modelSha256` (docs/scoring-service.md)."""
    hub = connect("image-classifier-service")
    if not hub.is_edge:
        return None
    updater = ModelUpdater(settings, service.models, hub)
    updater.on_swap = lambda new, old: service.metrics.set_model(
        new.model_id, len(new.labels), old.model_id, len(old.labels)
    )
    updater.start()
    return updater


# glibc malloc options (mallopt(3)); setting a threshold also stops glibc from adjusting it by itself.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
MB = 1024 * 1024


def _tune_malloc_for_loading() -> None:
    """Two malloc arenas instead of up to 8 per core (worker threads would each keep freed memory), and
    blocks over 128 kB mmapped while the model loads, so its ~20 MB of transient buffers go back."""
    _mallopt(M_ARENA_MAX, 2)
    _mallopt(M_MMAP_THRESHOLD, 128 * 1024)


def _tune_malloc_for_serving() -> None:
    """Then keep image-sized buffers in the heap for reuse: mmapping them costs ~5 ms of page faults per
    image (measured with bench/bench_service.py)."""
    _mallopt(M_MMAP_THRESHOLD, 32 * MB)
    _mallopt(M_TRIM_THRESHOLD, 64 * MB)


def _mallopt(option: int, value: int) -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(option, value)
    except (OSError, AttributeError):
        pass  # not glibc (e.g. musl, macOS): nothing to tune

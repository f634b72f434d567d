"""Run the app under waitress, a production WSGI server that is pure Python (small enough for a Pi)."""

from __future__ import annotations

import logging
import signal
import sys

from edgevision.classifier.app import FORM_OVERHEAD, create_app
from edgevision.classifier.settings import ClassifierSettings
from edgevision.errors import EdgeVisionError

log = logging.getLogger(__name__)


class ListenError(EdgeVisionError):
    """The service cannot open its port."""


def serve(settings: ClassifierSettings) -> None:
    """Load the model (ModelLoadError ends start-up with one line), then serve until SIGTERM/SIGINT."""
    import waitress

    _limit_malloc_arenas()
    app = create_app(settings)
    model = app.extensions["edgevision.classifier"].models.default
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # container stop: leave cleanly
    # "Task queue depth is N" on every busy moment: /metrics' request_seconds shows overload better.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    try:
        server = waitress.create_server(
            app,
            host=settings.host,
            port=settings.port,
            threads=settings.threads,
            ident="edgevision",
            # Bodies far over the limit are refused by waitress before they are buffered; those just over
            # the limit reach Flask, which answers 413 JSON.
            max_request_body_size=2 * (settings.max_image_bytes + FORM_OVERHEAD),
            channel_timeout=60,
        )
    except OSError as exc:  # port in use, privileged port, unknown address
        raise ListenError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
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


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each new thread its own malloc arena (up to 8 per core) and keeps their freed memory:
    with a thread pool scoring images that is tens of MB of RSS for nothing. Two arenas cost no speed here."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX; must run before the worker threads start
    except (OSError, AttributeError):
        pass  # not glibc (e.g. musl, macOS): nothing to tune

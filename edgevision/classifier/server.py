"""Run the app under waitress, a production WSGI server that is pure Python (small enough for a Pi)."""

from __future__ import annotations

import logging
import signal
import sys

from edgevision.classifier.app import FORM_OVERHEAD, create_app
from edgevision.classifier.settings import ClassifierSettings

log = logging.getLogger(__name__)


def serve(settings: ClassifierSettings) -> None:
    """Load the model (ModelLoadError ends start-up with one line), then serve until SIGTERM/SIGINT."""
    import waitress

    app = create_app(settings)
    model = app.extensions["edgevision.classifier"].models.default
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # container stop: leave cleanly
    log.info(
        "serving %s (%d tags) on http://%s:%d with %d threads, %d intra-op threads",
        model.model_id,
        len(model.labels),
        settings.host,
        settings.port,
        settings.threads,
        settings.intra_op_threads,
    )
    waitress.serve(
        app,
        host=settings.host,
        port=settings.port,
        threads=settings.threads,
        ident="edgevision",
        # Bodies far over the limit are refused by waitress before they are buffered; those just over the
        # limit reach Flask, which answers 413 JSON.
        max_request_body_size=2 * (settings.max_image_bytes + FORM_OVERHEAD),
        channel_timeout=60,
        _quiet=True,
    )

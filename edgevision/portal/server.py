"""Run the portal: the training worker process beside waitress, both stopped together."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

from edgevision.backoff import Backoff
from edgevision.portal.errors import PortalError
from edgevision.portal.settings import PortalSettings

log = logging.getLogger(__name__)


class WorkerSupervisor:
    """Keeps one training worker process running; a worker that dies is started again (with backoff)."""

    def __init__(self, settings: PortalSettings) -> None:
        self.settings = settings
        self.process: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="portal-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        backoff = Backoff(maximum=30.0, initial=1.0)
        while not self._stop.is_set():
            env = {
                **os.environ,
                "EDGEVISION_PORTAL_PARENT": str(os.getpid()),
                "PORTAL_DATA_DIR": str(self.settings.data_dir),
            }
            if self.settings.database_url is not None:  # in the environment, not in argv where ps shows it
                env["PORTAL_DATABASE_URL"] = self.settings.database_url.get_secret_value()
            self.process = subprocess.Popen([sys.executable, "-m", "edgevision.portal.worker"], env=env)
            code = self.process.wait()
            if self._stop.is_set():
                return
            log.warning("training worker exited (%s); starting it again", code)
            self._stop.wait(backoff.next())

    def stop(self) -> None:
        self._stop.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def check_exposure(settings: PortalSettings) -> None:
    """Beyond loopback, both keys are required unless the operator said --insecure."""
    if settings.loopback_only or settings.insecure:
        return
    missing = [name for name in ("training", "prediction") if settings.key(name) is None]
    if missing:
        raise PortalError(
            f"refusing to listen on {settings.host} without {' and '.join(k.upper() + '_KEY' for k in missing)}:"
            " set the keys, listen on 127.0.0.1, or pass --insecure"
        )


def serve(settings: PortalSettings) -> None:
    import waitress

    from edgevision.portal.api import create_app

    check_exposure(settings)
    app = create_app(settings)
    try:
        server = waitress.create_server(
            app,
            host=settings.host,
            port=settings.port,
            threads=settings.threads,
            ident="edgevision-portal",
            # Flask answers bodies over the limit with a JSON 413; waitress drops only those twice as large
            max_request_body_size=2 * settings.max_request_bytes,
            channel_timeout=120,
        )
    except OSError as exc:
        raise PortalError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
    worker = WorkerSupervisor(settings)
    worker.start()
    importer = app.extensions.get("edgevision.portal.captures")
    if importer is not None:
        importer.start(settings.capture_scan_seconds)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("portal on http://%s:%d, data in %s", settings.host, settings.port, settings.data_dir)
    try:
        server.run()
    finally:
        server.close()
        worker.stop()

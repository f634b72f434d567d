"""The ranger's loop, first half: the frames the camera kept (CAPTURE_DIR, JPEG + sidecar with the scorer's
predictions) become stored predictions, live, each once. The folder is only read (mounted read-only on the
device); the portal keeps its own copy of each picture, by content, so the camera's retention cannot take a
frame away from the Predictions view.

Which project a frame belongs to: the one whose iteration produced it (the sidecar's modelId carries the model
file's hash), else PORTAL_CAPTURE_PROJECT (a project id or name), else it waits until one of them applies.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from pathlib import Path

from edgevision.contracts import CAPTURE_FILE_NAME, CaptureSidecar, ContractError, parse
from edgevision.files import is_temp_file
from edgevision.portal.iterations import Iterations
from edgevision.portal.service import Portal

log = logging.getLogger(__name__)

APPLICATION = "camera-capture"


class CaptureImporter:
    def __init__(self, portal: Portal, iterations: Iterations, folder: Path, project: str = "") -> None:
        self.portal = portal
        self.iterations = iterations
        self.folder = folder
        self.project = project
        self.counts = {"imported": 0, "unmatched": 0, "unreadable": 0}
        self._known: set[str] | None = None
        self._stop = threading.Event()

    def scan(self) -> int:
        """Import what is new; returns how many frames were imported."""
        if not self.folder.is_dir():
            return 0
        known = self._imported()
        models = self._models()
        fallback = self._fallback_project()
        imported = 0
        for jpeg in sorted(self.folder.rglob("*.jpg")):
            key = f"capture:{jpeg.relative_to(self.folder)}"
            if key in known or is_temp_file(jpeg) or not CAPTURE_FILE_NAME.match(jpeg.name):
                continue
            if self._import(jpeg, key, models, fallback):
                known.add(key)
                imported += 1
        self.counts["imported"] += imported
        return imported

    def _import(self, jpeg: Path, key: str, models: dict[str, tuple[str, str]], fallback: str | None) -> bool:
        try:
            sidecar = parse(CaptureSidecar, jpeg.with_suffix(".json").read_bytes())
            data = jpeg.read_bytes()
        except (OSError, ContractError) as exc:
            self.counts["unreadable"] += 1
            log.debug("capture %s not imported: %s", jpeg, exc)
            return False
        project_id, iteration_id = models.get(sidecar.modelId.rsplit("@", 1)[-1], (fallback, None))
        if project_id is None:
            self.counts["unmatched"] += 1
            return False
        prediction = {
            "id": None,
            "iteration": iteration_id,
            "created": sidecar.capturedAt.isoformat().replace("+00:00", "Z"),
            "predictions": [p.model_dump(mode="json") for p in sidecar.predictions],
        }
        return self.iterations.store_prediction(project_id, data, prediction, APPLICATION, "camera", key) is not None

    def _imported(self) -> set[str]:
        if self._known is None:
            rows = self.portal.db.query("SELECT source_key FROM predictions WHERE source = 'camera'")
            self._known = {r["source_key"] for r in rows}
        return self._known

    def _models(self) -> dict[str, tuple[str, str]]:
        """Model file hash (12 hex digits, as in a modelId) -> (project, iteration) of the portal's iterations."""
        out = {}
        for row in self.portal.db.query("SELECT * FROM iterations WHERE status = 'Completed'"):
            manifest = self.iterations.model_dir(row) / "cvexport.manifest"
            try:
                sha256 = json.loads(manifest.read_text(encoding="utf-8"))["ModelFileSHA256"]
            except (OSError, ValueError, KeyError):
                continue
            out[sha256[:12]] = (row["project_id"], row["id"])
        return out

    def _fallback_project(self) -> str | None:
        """PORTAL_CAPTURE_PROJECT's id; a name that is no project yet becomes one (Multiclass, default domain),
        so a camera's frames have somewhere to go before anyone trained."""
        if not self.project:
            return None
        row = self.portal.db.one(
            "SELECT id FROM projects WHERE id = ? OR name = ?", (self.project.lower(), self.project)
        )
        if row is not None:
            return row["id"]
        try:
            uuid.UUID(self.project)
        except ValueError:
            return self.portal.create_project(self.project, "frames kept by the camera")["id"]
        return None

    def run(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.scan()
            except Exception:  # a bad moment (a database busy past its timeout) must not end the loop
                log.exception("importing captures from %s failed; trying again", self.folder)

    def start(self, every: float) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(every,), name="capture-import", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

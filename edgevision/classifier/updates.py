"""Model update by module twin: desired `modelUrl` + `modelSha256` swap the scorer's default model live.

The model (an `.onnx` file, or a Custom Vision export `.zip` with model.onnx + labels.txt) comes from an https
URL or from a path in the models volume. It is downloaded with a size limit and a timeout, its SHA-256 must be
the one the twin names, it is loaded and made to score a real photo, and only then does it replace the serving
model, between two requests: requests in flight finish on the model they started with. The current and the
previous model stay in MODEL_UPDATE_DIR (so a restart serves the update, and a broken current falls back to
the previous). Anything that fails leaves the serving model as it was and is reported: `modelId`,
`modelSha256`, `modelUrl`, `modelUpdateError`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import shutil
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edgevision.classifier.errors import ApiError
from edgevision.classifier.fetch import fetch_image
from edgevision.classifier.registry import ModelRegistry
from edgevision.classifier.settings import ClassifierSettings
from edgevision.demo import demo_photos
from edgevision.errors import EdgeVisionError
from edgevision.files import write_atomic
from edgevision.hub import Hub
from edgevision.models import ImageModel, ModelLoadError, load_model

log = logging.getLogger("edgevision.classifier.updates")

STATE_FILE = "state.json"
MODEL_FILES = ("model.onnx", "labels.txt", "cvexport.manifest")  # what a Custom Vision export zip may hold


class ModelUpdateError(EdgeVisionError):
    """A twin's model cannot be served; the serving model stays."""


@dataclass(frozen=True)
class ModelSource:
    """What the twin asks for."""

    url: str
    sha256: str

    @classmethod
    def from_desired(cls, desired: dict[str, Any]) -> ModelSource | None:
        url, digest = desired.get("modelUrl"), desired.get("modelSha256")
        if not url and not digest:
            return None
        if not isinstance(url, str) or not url.strip():
            raise ModelUpdateError("modelUrl must be an https URL or a path in the models volume")
        if not isinstance(digest, str) or len(digest.strip()) != 64:
            raise ModelUpdateError("modelSha256 must be the model file's SHA-256 as 64 hexadecimal digits")
        digest = digest.strip().lower()
        if any(c not in "0123456789abcdef" for c in digest):
            raise ModelUpdateError("modelSha256 must be the model file's SHA-256 as 64 hexadecimal digits")
        return cls(url.strip(), digest)


class ModelUpdater:
    """Applies twin model updates on its own thread (a download must not hold the SDK's thread)."""

    def __init__(self, settings: ClassifierSettings, registry: ModelRegistry, hub: Hub) -> None:
        self.settings = settings
        self.registry = registry
        self.hub = hub
        self.folder = settings.model_update_dir
        self.current: dict[str, str] | None = None  # {"sha256", "url", "modelId"} of the twin's model serving
        self.last_error = ""
        self._wanted: ModelSource | None = None
        self._pending = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-updates", daemon=True)
        self.on_swap: Callable[[ImageModel, ImageModel], None] | None = None  # new, previous (for metrics)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve the update kept from an earlier run, then follow the twin."""
        self._restore()
        self._thread.start()
        self.hub.on_desired(self.request)
        self.request(self.hub.desired())
        self._report()

    def close(self) -> None:
        self._stop.set()
        self._pending.set()
        self._thread.join(5)

    def request(self, desired: dict[str, Any]) -> None:
        """A desired-properties patch (or the whole desired set): queue its model, the newest wins."""
        if "modelUrl" not in desired and "modelSha256" not in desired:
            return
        try:
            source = ModelSource.from_desired(desired)
        except ModelUpdateError as exc:
            self._fail(str(exc))
            return
        if source is None:
            return  # both cleared: keep serving what serves now
        with self._lock:
            self._wanted = source
        self._pending.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._pending.wait()
            self._pending.clear()
            with self._lock:
                source, self._wanted = self._wanted, None
            if source is None or self._stop.is_set():
                continue
            try:
                self.apply(source)
            except ModelUpdateError as exc:
                self._fail(str(exc))
            except Exception as exc:  # a bug must not end the thread; the serving model stays
                log.exception("model update failed")
                self._fail(f"model update failed: {exc}")

    # -- one update --------------------------------------------------------------------------------------

    def apply(self, source: ModelSource) -> None:
        if self.current and self.current["sha256"] == source.sha256:
            if self.last_error:
                self.last_error = ""
                self._report()
            return
        if self.folder is None:
            raise ModelUpdateError("MODEL_UPDATE_DIR is not set: this scorer cannot keep a model sent by twin")
        data = self._fetch(source.url)
        digest = hashlib.sha256(data).hexdigest()
        if digest != source.sha256:
            raise ModelUpdateError(f"{source.url}: SHA-256 is {digest}, the twin's modelSha256 is {source.sha256}")
        target = self.folder / source.sha256
        self._unpack(data, source.url, target)
        try:
            model = self._load_and_verify(target)
        except ModelUpdateError:
            shutil.rmtree(target, ignore_errors=True)
            raise
        previous = self.registry.swap(model)
        if self.on_swap is not None:
            self.on_swap(model, previous)
        self._remember(source, model)
        log.info("serving %s from %s (was %s)", model.model_id, source.url, previous.model_id)
        self.last_error = ""
        self._report()

    def _fetch(self, url: str) -> bytes:
        limit, timeout = self.settings.model_max_bytes, self.settings.model_download_timeout
        scheme = urlsplit(url).scheme.lower()
        if scheme == "https":
            cafile = str(self.settings.model_ca_file) if self.settings.model_ca_file else None
            try:
                # The twin is the operator's, not a client's: a LAN update server is allowed.
                return fetch_image(url, max_bytes=limit, timeout=timeout, allow_private=True, cafile=cafile)
            except ApiError as exc:
                raise ModelUpdateError(f"{url}: {exc.message.replace('the image URL', 'the model URL')}") from None
        if scheme and scheme != "file":
            raise ModelUpdateError(f"{url}: modelUrl must be https:// or a path in the models volume")
        return self._read_path(Path(urlsplit(url).path if scheme == "file" else url))

    def _read_path(self, path: Path) -> bytes:
        root = self.settings.models_root.resolve()
        resolved = (root / path).resolve() if not path.is_absolute() else path.resolve()
        if not resolved.is_relative_to(root):
            raise ModelUpdateError(f"{path}: a modelUrl path must lie inside the models volume {root}")
        try:
            if resolved.stat().st_size > self.settings.model_max_bytes:
                raise ModelUpdateError(f"{path}: larger than MODEL_MAX_BYTES ({self.settings.model_max_bytes:,})")
            return resolved.read_bytes()
        except OSError as exc:
            raise ModelUpdateError(f"{path}: cannot read it: {exc.strerror or exc}") from None

    def _unpack(self, data: bytes, url: str, target: Path) -> None:
        staging = target.with_name(f".{target.name}.staging")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            if data[:4] == b"PK\x03\x04":
                self._unzip(data, url, staging)
            else:
                write_atomic(staging / "model.onnx", data, durable=True)
            shutil.rmtree(target, ignore_errors=True)
            staging.replace(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _unzip(self, data: bytes, url: str, staging: Path) -> None:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = {Path(n).name: n for n in archive.namelist() if Path(n).name in MODEL_FILES}
                if "model.onnx" not in members:
                    raise ModelUpdateError(f"{url}: the zip holds no model.onnx")
                total = sum(archive.getinfo(n).file_size for n in members.values())
                if total > self.settings.model_max_bytes:  # a zip bomb is refused before it is inflated
                    raise ModelUpdateError(f"{url}: unpacks to {total:,} bytes, over MODEL_MAX_BYTES")
                for name, member in members.items():
                    write_atomic(staging / name, archive.read(member), durable=True)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ModelUpdateError(f"{url}: not a readable zip: {exc}") from None

    def _load_and_verify(self, folder: Path) -> ImageModel:
        """Load and score a real photo: a model that loads but cannot score never serves."""
        try:
            model = load_model(folder, intra_op_threads=self.settings.intra_op_threads)
            predictions = model.predict(demo_photos()[0].read_bytes())
        except ModelLoadError as exc:
            raise ModelUpdateError(f"the new model does not load: {exc}") from None
        except Exception as exc:  # onnxruntime raises its own types for a model that loads but cannot run
            raise ModelUpdateError(f"the new model cannot score an image: {exc}") from None
        if len(predictions) != len(model.labels) or not all(
            math.isfinite(p.probability) and 0.0 <= p.probability <= 1.0 for p in predictions
        ):
            raise ModelUpdateError("the new model's answer on a test photo is not a probability per tag")
        return model

    # -- what survives a restart ---------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        if self.folder is None:
            return {}
        try:
            return json.loads((self.folder / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _remember(self, source: ModelSource, model: ImageModel) -> None:
        assert self.folder is not None
        previous = self.current
        self.current = {"sha256": source.sha256, "url": source.url, "modelId": model.model_id}
        write_atomic(
            self.folder / STATE_FILE, json.dumps({"current": self.current, "previous": previous}), durable=True
        )
        keep = {self.current["sha256"], *([previous["sha256"]] if previous else [])}
        for child in self.folder.iterdir():
            if child.is_dir() and not child.name.startswith(".") and child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)

    def _restore(self) -> None:
        """At start: the twin's model of the last run, else the one before it, else MODEL_DIR's."""
        state = self._state()
        for which in ("current", "previous"):
            entry = state.get(which)
            if not entry or self.folder is None:
                continue
            try:
                model = self._load_and_verify(self.folder / entry["sha256"])
            except (ModelUpdateError, KeyError) as exc:
                log.error("the %s model of MODEL_UPDATE_DIR cannot be served: %s", which, exc)
                self.last_error = f"kept model {entry.get('sha256', '?')[:12]} cannot be served: {exc}"
                continue
            self.registry.swap(model)
            self.current = {"sha256": entry["sha256"], "url": entry.get("url", ""), "modelId": model.model_id}
            log.info("serving %s, received by twin in an earlier run", model.model_id)
            return

    # -- reporting -----------------------------------------------------------------------------------------

    def _fail(self, message: str) -> None:
        log.error("model update refused: %s", message)
        self.last_error = message
        self._report()

    def _report(self) -> None:
        current = self.current or {}
        self.hub.report(
            {
                "modelId": self.registry.default.model_id,
                "modelSha256": current.get("sha256"),
                "modelUrl": current.get("url"),
                "modelUpdateError": self.last_error or None,
            }
        )

"""The scoring service's settings: one environment variable per field, documented by its description."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from edgevision.config import Settings
from edgevision.models import DEFAULT_MAX_PIXELS

MB = 1024 * 1024


def _usable_cores() -> int:
    """Cores this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class ClassifierSettings(Settings):
    """How `edgevision serve` (the ImageClassifierService module) listens, scores and guards its input."""

    # A running server cannot move its socket or swap its thread pool from a twin patch.
    static_fields: ClassVar[frozenset[str]] = frozenset({"host", "port", "threads"})

    model_dir: Path | None = Field(
        None,
        description="Model folder (model.onnx + labels.txt) or .onnx file; unset = the bundled ImageNet MobileNetV2.",
    )
    published_dir: Path | None = Field(
        None,
        description="Folder of published iterations `<name>/model.onnx`, served on the"
        " `.../classify/iterations/<name>/...` routes; unknown names fall back to the default model.",
    )
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(80, ge=1, le=65535, description="TCP port to listen on (80 in the container).")
    threads: int = Field(
        default_factory=lambda: min(4, _usable_cores()),
        ge=1,
        le=64,
        description="HTTP worker threads, i.e. images scored at once.",
    )
    intra_op_threads: int = Field(1, ge=0, le=64, description="onnxruntime threads per inference (0 = one per core).")
    prediction_key: SecretStr | None = Field(
        None, description="When set, every prediction request must send this value in the `Prediction-Key` header."
    )
    max_image_bytes: int = Field(4 * MB, ge=1, description="Largest accepted request body / image download, bytes.")
    max_image_pixels: int = Field(
        DEFAULT_MAX_PIXELS, ge=1, description="Largest accepted image, width x height (checked before decoding)."
    )
    max_predictions: int = Field(
        0, ge=0, description="Return at most this many predictions, highest first (0 = all, as Custom Vision)."
    )
    url_enabled: bool = Field(True, description="Serve the `/url` routes (the service downloads the image).")
    url_timeout: float = Field(10.0, gt=0, le=300, description="Seconds allowed to download an image for `/url`.")
    url_allow_private: bool = Field(
        False,
        description="Let `/url` fetch loopback, private, link-local and reserved addresses (off: SSRF guard).",
    )
    model_update_dir: Path | None = Field(
        None,
        description="Writable folder for models received by twin (`modelUrl` + `modelSha256`): the current and"
        " the previous one are kept there, so a restart serves the update. Unset: twin model updates are refused"
        " (and reported).",
    )
    models_root: Path = Field(
        Path("/models"),
        description="A `modelUrl` that is a path must lie inside this folder (the models volume).",
    )
    model_max_bytes: int = Field(
        256 * MB, ge=1, description="Largest model (`.onnx`, or a Custom Vision export `.zip`) a twin may send, bytes."
    )
    model_download_timeout: float = Field(
        300.0, gt=0, le=3600, description="Seconds allowed to download a twin's `modelUrl`."
    )
    model_ca_file: Path | None = Field(
        None,
        description="CA certificates (PEM) to verify an https `modelUrl` with, instead of the system's (a private"
        " update server).",
    )


def settings_markdown() -> str:
    """The settings as a Markdown table for docs/scoring-service.md (`python -m edgevision.classifier.settings`)."""
    rows = ["| variable | default | description |", "|---|---|---|"]
    for env, field in ClassifierSettings.env_names().items():
        info = ClassifierSettings.model_fields[field]
        if info.default_factory is not None:
            default = "one per core, at most 4"
        elif info.default is None:
            default = "unset"
        else:
            default = f"`{str(info.default).lower() if isinstance(info.default, bool) else info.default}`"
        rows.append(f"| `{env}` | {default} | {info.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_markdown())

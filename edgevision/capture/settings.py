"""The camera module's settings: the seed-004 sample's variables plus what a field camera needs.

Every field is one environment variable (its name upper-cased) and one twin desired property; the effective
values are reported back as reported properties.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from pydantic import Field, SecretStr, field_validator, model_validator

from edgevision.config import Settings


class SendMode(str, Enum):
    """Which scored frames become `output1` messages."""

    EVERY = "every"
    ON_CHANGE = "on-change"
    INTERVAL = "interval"


class CaptureSettings(Settings):
    """How `edgevision capture` (the CameraCapture module) reads, scores, reports and keeps frames."""

    # The viewer's socket cannot move under a running server; the blob key stays in the env, out of twins
    # (which anyone reading the IoT Hub can see).
    static_fields: ClassVar[frozenset[str]] = frozenset(
        {"viewer_host", "viewer_port", "viewer_key", "blob_connection_string"}
    )

    # -- the seed-004 sample's variables ---------------------------------------------------------------
    video_path: str = Field(
        description="Camera index (`0`) or device (`/dev/video0`), video file, `rtsp://` / `http(s)://` stream,"
        " or `picamera` for a Raspberry Pi CSI camera (needs the `picamera` extra).",
    )
    image_processing_endpoint: str = Field(
        "",
        description="Scorer URL frames are POSTed to, e.g. `http://image-classifier-service:80/image`;"
        " empty = frames are not scored (viewer only).",
    )
    image_processing_params: dict[str, str] = Field(
        default_factory=dict,
        description="Query parameters sent with every frame: a JSON object or `k=v&k2=v2`.",
    )
    show_video: bool = Field(False, description="Serve the live viewer web page on VIEWER_PORT.")
    verbose: bool = Field(False, description="Log every frame with per-stage timings.")
    loop_video: bool = Field(
        True, description="Restart a video file at its end; off = the module exits 0 at the end of the file."
    )
    convert_to_gray: bool = Field(False, description="Send grayscale frames to the scorer.")
    resize_width: int = Field(0, ge=0, le=10000, description="Width of frames sent to the scorer (0 = keep).")
    resize_height: int = Field(0, ge=0, le=10000, description="Height of frames sent to the scorer (0 = keep).")

    # -- what users need beyond the sample -------------------------------------------------------------
    keep_aspect_ratio: bool = Field(
        True,
        description="Resize within RESIZE_WIDTH x RESIZE_HEIGHT keeping the aspect ratio (one of them may be 0);"
        " off = stretch to exactly that size.",
    )
    frame_rate: float = Field(
        0.0, ge=0.0, le=1000.0, description="Score at most this many frames per second (0 = as fast as possible)."
    )
    play_at_file_rate: bool = Field(
        False,
        description="Play video files at their own frame rate like a live camera, skipping the frames the"
        " scorer cannot keep up with; off = every frame of the file, in order, as fast as the scorer allows.",
    )
    jpeg_quality: int = Field(
        90,
        ge=1,
        le=100,
        description="JPEG quality of frames sent and stored (1-100); Motion-JPEG files keep their own.",
    )
    request_timeout: float = Field(10.0, gt=0.0, le=300.0, description="Seconds allowed for one scorer request.")
    prediction_key: SecretStr | None = Field(
        None, description="Sent as the `Prediction-Key` header when the scorer requires one."
    )
    max_backoff: float = Field(
        30.0, gt=0.0, le=3600.0, description="Longest wait, seconds, between retries of a failing scorer or source."
    )

    # -- reporting -------------------------------------------------------------------------------------
    send_mode: SendMode = Field(
        SendMode.ON_CHANGE,
        description="`every` scored frame, `on-change` of the top tag, or every SEND_INTERVAL seconds (`interval`).",
    )
    send_interval: float = Field(10.0, gt=0.0, le=86400.0, description="Seconds between messages in `interval` mode.")
    min_send_interval: float = Field(
        1.0, ge=0.0, le=86400.0, description="Never send two `output1` messages closer than this, seconds."
    )
    message_top_n: int = Field(
        5, ge=0, le=100000, description="Predictions kept in messages and sidecars, highest first (0 = all)."
    )
    report_interval: float = Field(
        30.0, gt=0.0, le=86400.0, description="Seconds between reported-property updates of the counters."
    )

    # -- keep only what matters ------------------------------------------------------------------------
    capture_tags: list[str] = Field(
        default_factory=list,
        description="Comma list of tags whose frames are stored (case-insensitive; `*` = any tag); empty = none.",
    )
    capture_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="A capture tag counts when its probability is at least this."
    )
    capture_dir: Path = Field(Path("captures"), description="Folder of stored frames (JPEG + sidecar JSON).")
    capture_max_mb: float = Field(
        1024.0, ge=0.0, description="Delete the oldest captures beyond this total size, MB (0 = no limit)."
    )
    capture_max_age_days: float = Field(
        30.0, ge=0.0, description="Delete captures older than this, days (0 = keep forever)."
    )
    capture_cooldown: float = Field(
        10.0,
        ge=0.0,
        le=86400.0,
        description="Seconds (of video time) after storing a frame for a tag before that tag stores another.",
    )

    capture_hard_max_mb: float = Field(
        2048.0,
        ge=0.0,
        description="With uploads on, CAPTURE_MAX_MB and CAPTURE_MAX_AGE_DAYS delete only uploaded captures;"
        " beyond this total size, MB, the oldest go even before their upload (counted as dropped; 0 = no limit).",
    )

    # -- store and forward to Blob Storage -------------------------------------------------------------
    blob_connection_string: SecretStr | None = Field(
        None,
        description="Connection string of the blob store kept frames are uploaded to, e.g. the IoT Edge blob"
        " module's `DefaultEndpointsProtocol=http;BlobEndpoint=http://<module>:11002/<account>;AccountName=...;"
        "AccountKey=...`; unset = no uploads.",
    )
    blob_container: str = Field(
        "captures",
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$",
        description="Container the frames go to (lowercase letters, digits and single hyphens).",
    )
    blob_prefix: str = Field(
        "",
        max_length=200,
        description="First part of every blob name, `<prefix>/<YYYY-MM-DD>/<capture>.jpg`; empty = the IoT Edge"
        " device id (else the host name).",
    )
    upload_max_bytes_per_second: int = Field(
        0, ge=0, description="Upload bandwidth cap, bytes per second on average (0 = as fast as the link allows)."
    )
    upload_timeout: float = Field(60.0, gt=0.0, le=3600.0, description="Seconds allowed for one blob upload.")
    upload_drain: float = Field(
        10.0,
        ge=0.0,
        le=3600.0,
        description="At exit, seconds spent finishing queued uploads while the store answers (the rest goes"
        " after the next start).",
    )

    # -- live viewer -----------------------------------------------------------------------------------
    viewer_host: str = Field("0.0.0.0", description="Address the live viewer listens on.")
    viewer_port: int = Field(5012, ge=1, le=65535, description="TCP port of the live viewer.")
    viewer_key: SecretStr | None = Field(
        None,
        description="Key the live viewer asks for (login page, or the `X-Viewer-Key` header for scripts);"
        " unset = the viewer listens on loopback only, whatever VIEWER_HOST says.",
    )

    @field_validator("image_processing_params", mode="before")
    @classmethod
    def _parse_params(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return {}
            if not text.startswith("{"):
                return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"not a JSON object: {exc}") from None
        if isinstance(value, dict):  # query values are strings; JSON numbers/booleans keep their JSON spelling
            return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
        return value

    @field_validator("capture_tags", mode="before")
    @classmethod
    def _split_tags(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            return [str(tag).strip() for tag in value if str(tag).strip()]
        return value

    @field_validator("image_processing_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        if value and not value.lower().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("blob_connection_string")
    @classmethod
    def _check_connection_string(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parts = dict(p.split("=", 1) for p in value.get_secret_value().strip().strip(";").split(";") if "=" in p)
        if not parts.get("AccountName") or not (parts.get("AccountKey") or parts.get("SharedAccessSignature")):
            raise ValueError("expected KEY=VALUE;... with AccountName and AccountKey (or SharedAccessSignature)")
        return value

    @model_validator(mode="after")
    def _check_limits(self) -> CaptureSettings:
        if self.capture_hard_max_mb and self.capture_max_mb > self.capture_hard_max_mb:
            raise ValueError("CAPTURE_MAX_MB must not exceed CAPTURE_HARD_MAX_MB (0 = no hard limit)")
        return self

    @field_validator("video_path")
    @classmethod
    def _check_video_path(cls, value: str) -> str:
        if not value:
            raise ValueError("must name a camera, file or stream")
        return value

    def reported(self) -> dict[str, Any]:
        data = super().reported()
        data["CAPTURE_TAGS"] = ",".join(self.capture_tags)  # twin arrays are awkward; keep the env form
        return data

    def captures(self, tag: str) -> bool:
        """Whether frames with `tag` are to be stored."""
        wanted = {t.lower() for t in self.capture_tags}
        return "*" in wanted or tag.lower() in wanted

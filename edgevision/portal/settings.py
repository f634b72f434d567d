"""The portal's settings: one environment variable per field, documented by its description."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from edgevision.config import Settings

MB = 1024 * 1024
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class PortalSettings(Settings):
    """How `edgevision portal` (the optional custom-vision-portal module) stores, listens and guards."""

    static_fields: ClassVar[frozenset[str]] = frozenset({"data_dir", "database_url", "host", "port", "threads"})

    data_dir: Path = Field(
        Path("portal-data"),
        description="Folder of the database (portal.db, unless PORTAL_DATABASE_URL), the images (stored once by"
        " content hash), the projects' iterations and exports.",
        json_schema_extra={"env": "PORTAL_DATA_DIR"},
    )
    database_url: SecretStr | None = Field(
        None,
        description="A PostgreSQL database for the portal's rows instead of SQLite in the data folder:"
        " `postgresql://user@host:5432/dbname` (libpq's URL; the password may come from PGPASSWORD or ~/.pgpass)."
        " Images and models stay in PORTAL_DATA_DIR: one data folder per database. Needs the portal-postgres extra.",
        json_schema_extra={"env": "PORTAL_DATABASE_URL"},
    )
    host: str = Field("127.0.0.1", description="Address to listen on.", json_schema_extra={"env": "PORTAL_HOST"})
    port: int = Field(
        8080, ge=1, le=65535, description="TCP port to listen on.", json_schema_extra={"env": "PORTAL_PORT"}
    )
    threads: int = Field(
        4, ge=1, le=64, description="HTTP worker threads.", json_schema_extra={"env": "PORTAL_THREADS"}
    )
    training_key: SecretStr | None = Field(
        None, description="When set, Training API requests must send it in the `Training-Key` header."
    )
    training_key_file: Path | None = Field(
        None, description="A file holding the training key (wins over TRAINING_KEY; e.g. a mounted secret)."
    )
    prediction_key: SecretStr | None = Field(
        None, description="When set, prediction requests must send it in the `Prediction-Key` header."
    )
    prediction_key_file: Path | None = Field(
        None, description="A file holding the prediction key (wins over PREDICTION_KEY)."
    )
    insecure: bool = Field(
        False,
        description="Allow listening beyond loopback without keys (anyone who reaches the port may train,"
        " publish and delete).",
        json_schema_extra={"env": "PORTAL_INSECURE"},
    )
    published_dir: Path | None = Field(
        None,
        description="The scoring service's PUBLISHED_DIR: publishing also copies the model to <dir>/<name>/, so"
        " a running `edgevision serve` answers that name at once (the models volume on a device).",
    )
    max_image_bytes: int = Field(
        6 * MB,
        ge=1,
        description="Largest training image, bytes (Custom Vision: 6 MB).",
        json_schema_extra={"env": "PORTAL_MAX_IMAGE_BYTES"},
    )
    max_request_bytes: int = Field(
        160 * MB,
        ge=1,
        description="Largest request body (a batch of 64 images as base64 JSON), bytes.",
        json_schema_extra={"env": "PORTAL_MAX_REQUEST_BYTES"},
    )
    url_allow_private: bool = Field(
        False,
        description="Let image-from-URL requests fetch loopback and private addresses (off: SSRF guard).",
        json_schema_extra={"env": "PORTAL_URL_ALLOW_PRIVATE"},
    )
    url_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds allowed to download one image from a URL.",
        json_schema_extra={"env": "PORTAL_URL_TIMEOUT"},
    )
    capture_dir: Path | None = Field(
        None,
        description="The camera's capture folder (read only): its kept frames, with the scorer's predictions,"
        " become stored predictions to tag and train on. Unset: none.",
    )
    capture_project: str = Field(
        "",
        description="Project (id or name) for kept frames whose model is not one of the portal's iterations.",
        json_schema_extra={"env": "PORTAL_CAPTURE_PROJECT"},
    )
    capture_scan_seconds: float = Field(
        5.0,
        gt=0,
        description="Seconds between looks at CAPTURE_DIR for new frames.",
        json_schema_extra={"env": "PORTAL_CAPTURE_SCAN_SECONDS"},
    )
    advanced_max_minutes: float = Field(
        30.0,
        gt=0,
        description="Advanced training stops after this many minutes even when the request reserved more hours.",
        json_schema_extra={"env": "PORTAL_ADVANCED_MAX_MINUTES"},
    )

    def key(self, which: str) -> bytes | None:
        """The training or prediction key as bytes (the file wins), or None when unset."""
        path = getattr(self, f"{which}_key_file")
        if path is not None:
            from edgevision.portal.errors import PortalError

            try:
                text = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise PortalError(f"{path}: cannot read the {which} key: {exc.strerror or exc}") from None
            return text.encode() or None
        secret = getattr(self, f"{which}_key")
        return secret.get_secret_value().encode() if secret and secret.get_secret_value() else None

    @property
    def loopback_only(self) -> bool:
        return self.host in LOOPBACK or self.host.startswith("127.")


def settings_markdown() -> str:
    """The settings as the Markdown table of docs/portal.md (`python -m edgevision.portal.settings`)."""
    rows = ["| variable | default | description |", "|---|---|---|"]
    for env, field in PortalSettings.env_names().items():
        info = PortalSettings.model_fields[field]
        default = info.default
        shown = "unset" if default is None else f"`{str(default).lower() if isinstance(default, bool) else default}`"
        rows.append(f"| `{env}` | {shown} | {info.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_markdown())

"""Image files, stored once by content hash: <data>/images/ab/<sha256>.<ext> and a JPEG thumbnail beside it.
Files are written atomically before the database row that names them, so a kill -9 leaves at worst an
unreferenced file, never a row pointing at half an image."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from edgevision.files import write_atomic
from edgevision.models import decode_image
from edgevision.models.images import ImageDecodeError

THUMBNAIL_SIDE = 160
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "BMP": "bmp", "WEBP": "webp", "TIFF": "tif"}


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    width: int
    height: int
    size_bytes: int
    format: str


class ImageRejected(Exception):
    """Not an image the trainer can use: `status` is the Custom Vision per-image status."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ImageStore:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def path(self, sha256: str, fmt: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.{EXTENSIONS.get(fmt, 'img')}"

    def thumbnail_path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.thumb.jpg"

    def put(self, data: bytes) -> StoredImage:
        """Check and keep `data` (once per content); raises ImageRejected."""
        if len(data) > self.max_bytes:
            raise ImageRejected("ErrorImageSize", f"the image is {len(data):,} bytes; at most {self.max_bytes:,}")
        try:
            picture = decode_image(data)
            fmt = Image.open(io.BytesIO(data)).format or "JPEG"
        except ImageDecodeError as exc:
            status = "ErrorImageDimensions" if exc.code == "BadRequestImageDimensions" else "ErrorImageFormat"
            raise ImageRejected(status, exc.message) from None
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.path(sha256, fmt)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, data, durable=True)
        thumb = self.thumbnail_path(sha256)
        if not thumb.is_file():
            small = picture.copy()
            small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            buffer = io.BytesIO()
            small.save(buffer, "JPEG", quality=85)
            write_atomic(thumb, buffer.getvalue())
        return StoredImage(sha256, picture.width, picture.height, len(data), fmt)

    def remove(self, sha256: str, fmt: str) -> None:
        for path in (self.path(sha256, fmt), self.thumbnail_path(sha256)):
            path.unlink(missing_ok=True)

"""Image bytes in, an upright RGB picture out: the one decoder every path uses (service, camera, batch, trainer).

Decoding is guarded: the format must be an image format we accept, the pixel count is checked from the
header before any pixel is decoded (a 30000 x 30000 PNG is refused, not inflated), truncated files are
errors, EXIF orientation is applied and animated images give their first frame.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from edgevision.errors import EdgeVisionError

ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "GIF", "TIFF", "WEBP"})
DEFAULT_MAX_PIXELS = 40_000_000  # ~ a 7300 x 5500 photo; anything larger is not a camera frame
MAX_ASPECT_RATIO = 100  # a 40000 x 1 strip is a few bytes of PNG and no photo

# We do our own pixel-count check with a clear error; PIL's own warning must not fire first.
Image.MAX_IMAGE_PIXELS = None


class ImageDecodeError(EdgeVisionError):
    """The bytes are not an image we can score. `code` follows Custom Vision's error codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode `data` to an RGB image with EXIF orientation applied, or raise ImageDecodeError."""
    if not data:
        raise ImageDecodeError("BadRequestImageFormat", "the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageDecodeError(
            "BadRequestImageFormat", "the data is not a supported image (JPEG, PNG, BMP, GIF)"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError("BadRequestImageFormat", f"the image cannot be read: {exc}") from None
    if image.format not in ACCEPTED_FORMATS:
        raise ImageDecodeError("BadRequestImageFormat", f"image format {image.format} is not supported")
    width, height = image.size
    if width < 1 or height < 1 or width * height > max_pixels:
        raise ImageDecodeError(
            "BadRequestImageDimensions",
            f"image is {width} x {height} pixels; at most {max_pixels:,} pixels are accepted",
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageDecodeError(
            "BadRequestImageDimensions",
            f"image is {width} x {height} pixels; its longer side may be at most {MAX_ASPECT_RATIO} times the shorter",
        )
    try:
        image.seek(0)  # animated GIF/PNG/WEBP: the first frame
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        return image if image.mode == "RGB" else image.convert("RGB")
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageDecodeError("BadRequestImageFormat", f"the image is damaged or truncated: {exc}") from None

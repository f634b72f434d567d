"""Images built on the fly for decoder and service tests: every format, EXIF orientation, animated GIF, bad input.

Plain functions (no fixtures) so tests/classifier can load this file too.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
WILDLIFE = ROOT / "edgevision" / "demo" / "media" / "photos" / "wildlife-wildbook"
ZEBRAS = (WILDLIFE / "2014_000006.jpg", WILDLIFE / "2014_000007.jpg")
ELEPHANTS = WILDLIFE / "2014_000002.jpg"
ORIENTATION = 0x0112


def photo(path: Path = ZEBRAS[0]) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def animated_gif(first: Image.Image, second: Image.Image) -> bytes:
    """A two-frame GIF; decoders must score the first frame."""
    buffer = io.BytesIO()
    first.save(buffer, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    return buffer.getvalue()


def exif_rotated_jpeg(upright: Image.Image, quality: int = 95) -> bytes:
    """A JPEG stored sideways with EXIF Orientation 6 ("rotate 90° clockwise to display")."""
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise; the viewer turns it back
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    return encode(stored, "JPEG", quality=quality, exif=exif.tobytes())


def without_exif(jpeg: bytes) -> Image.Image:
    """The stored pixels of a JPEG, orientation not applied."""
    with Image.open(io.BytesIO(jpeg)) as image:
        return image.convert("RGB")


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid 1-bit PNG of width x height zeros: ~110 kB on disk, 900 megapixels once decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_chunk = max(1, (1 << 20) // len(row))
    parts = []
    for start in range(0, height, rows_per_chunk):
        parts.append(compressor.compress(row * min(rows_per_chunk, height - start)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def truncated_jpeg() -> bytes:
    data = ZEBRAS[0].read_bytes()
    return data[: len(data) // 2]


def random_bytes(size: int = 50_000) -> bytes:
    return random.Random(4).randbytes(size)

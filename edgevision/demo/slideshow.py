"""Video clips made from still photos: a reproducible stand-in for a camera in tests, demos and benchmarks.

Each photo is letterboxed into a fixed frame size and held for `seconds_each`; the clip is Motion-JPEG in AVI,
which every OpenCV build can write and read back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgevision.errors import EdgeVisionError


class SlideshowError(EdgeVisionError):
    """A photo cannot be read or the clip cannot be written."""


@dataclass(frozen=True)
class Slideshow:
    """A written clip; usable wherever a path is (`os.fspath`, `str`)."""

    path: Path
    photos: tuple[Path, ...]
    fps: float
    frames_each: int

    @property
    def frame_count(self) -> int:
        return len(self.photos) * self.frames_each

    def photo_at(self, frame: int) -> Path:
        """The photo shown by frame number `frame` (0-based)."""
        return self.photos[frame // self.frames_each]

    def frames_of(self, photo: Path | str) -> range:
        """The frame numbers that show `photo` (its first appearance)."""
        index = [p.resolve() for p in self.photos].index(Path(photo).resolve())
        return range(index * self.frames_each, (index + 1) * self.frames_each)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


def make_slideshow(
    photos: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    fps: float = 5.0,
    seconds_each: float = 1.0,
    *,
    size: tuple[int, int] = (640, 480),
    quality: int = 95,
) -> Slideshow:
    """Write an MJPG `.avi` at `out` showing each of `photos` for `seconds_each` at `fps`, letterboxed into
    `size` (width, height); returns where each photo is."""
    if not photos:
        raise SlideshowError("a slideshow needs at least one photo")
    if fps <= 0 or seconds_each <= 0:
        raise SlideshowError("fps and seconds_each must be positive")
    frames_each = max(1, round(fps * seconds_each))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise SlideshowError(f"cannot write {path} (use an .avi name)")
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
    try:
        for photo in photos:
            frame = letterbox(_read(Path(photo)), size)
            for _ in range(frames_each):
                writer.write(frame)
    finally:
        writer.release()
    return Slideshow(path, tuple(Path(p) for p in photos), fps, frames_each)


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` scaled to fit `size` without distortion, centred on black."""
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    fitted = cv2.resize(
        image,
        (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
    )
    canvas = np.zeros((height, width, 3), np.uint8)
    top = (height - fitted.shape[0]) // 2
    left = (width - fitted.shape[1]) // 2
    canvas[top : top + fitted.shape[0], left : left + fitted.shape[1]] = fitted
    return canvas


def _read(photo: Path) -> np.ndarray:
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if image is None:
        raise SlideshowError(f"cannot read {photo} as an image")
    return image

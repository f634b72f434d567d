"""Writing files so that a reader, a crash or a kill -9 never sees half of one: one helper for the whole package."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"  # temp files are `.NAME.<random>.tmp` beside their target: easy to recognise and clear


def write_atomic(target: Path, data: bytes | str, *, durable: bool = False) -> None:
    """Replace `target` with `data` in one rename (str is written as UTF-8).

    `durable` also fsyncs the file and its folder, so the new content survives a power cut; that costs an
    fsync on an SD card, worth it for captures and model files, not for a display refreshed every frame.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if durable:
        fsync_dir(target.parent)


def copy_atomic(source: Path, target: Path) -> None:
    """Copy `source` over `target` in one rename."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        shutil.copyfile(source, temp)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def is_temp_file(path: Path) -> bool:
    """A temp file that `write_atomic` or `copy_atomic` left behind when killed mid-write."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


def fsync_dir(folder: Path) -> None:
    """Make the renames in `folder` themselves durable (not needed for kill -9, cheap enough)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

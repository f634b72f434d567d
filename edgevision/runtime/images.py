"""Container images -> local entry points: the runtime runs each module's production code as a process.

A manifest names images as `${MODULES.CameraCapture}` (templates) or `registry/cameracapture:0.1.0-amd64`
(expanded manifests); both resolve through the folder/repository name. Other images can be mapped by the
user (`edgevision run --image IMAGE=COMMAND`).
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from edgevision.errors import EdgeVisionError


class ImageError(EdgeVisionError):
    """An image has no local entry point."""


@dataclass(frozen=True)
class Listener:
    """A socket a module opens inside its container; locally it gets a free loopback port instead."""

    host_env: str = "HOST"
    port_env: str = "PORT"
    container_port: int = 80
    always_open: bool = True  # False when the module opens it only on request (the camera's viewer)


@dataclass(frozen=True)
class LocalImage:
    """How to run one image locally."""

    name: str
    command: tuple[str, ...]
    listeners: tuple[Listener, ...] = field(default_factory=tuple)


def _edgevision(*args: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "edgevision", *args)


BLOB_STORAGE = "AzureBlobStorage"

# Module folder name -> entry point. The scorer and the camera's viewer listen on ports (80 and 5012 in
# their containers); locally they get free ports and the other modules' URLs are rewritten to them.
BUILTIN_IMAGES: dict[str, LocalImage] = {
    "cameracapture": LocalImage(
        "CameraCapture", _edgevision("capture"), (Listener("VIEWER_HOST", "VIEWER_PORT", 5012, always_open=False),)
    ),
    "imageclassifierservice": LocalImage(
        "ImageClassifierService", _edgevision("serve"), (Listener("HOST", "PORT", 80),)
    ),
    "sensehatdisplay": LocalImage("SenseHatDisplay", _edgevision("display")),
    "customvisionportal": LocalImage(
        "CustomVisionPortal", _edgevision("portal"), (Listener("PORTAL_HOST", "PORTAL_PORT", 8080),)
    ),
    # Azure Blob Storage on IoT Edge (`mcr.microsoft.com/azure-blob-storage`) is Azurite locally, on port 11002.
    "azureblobstorage": LocalImage(
        BLOB_STORAGE, (sys.executable, "-m", "edgevision.runtime.azurite"), (Listener("BLOB_HOST", "BLOB_PORT", 11002),)
    ),
}

_TEMPLATE_IMAGE = re.compile(r"\$\{MODULES\.([A-Za-z0-9_-]+)((?:\.[A-Za-z0-9_-]+)*)\}")


def image_key(image: str) -> str:
    """`${MODULES.CameraCapture.debug}`, `reg.io/edgevision-camera-capture:0.1.0-amd64.debug` -> `cameracapture`."""
    match = _TEMPLATE_IMAGE.fullmatch(image.strip())
    name = match.group(1) if match else image.strip().rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    # Repositories are named `edgevision-<module-name>`; module folders `CameraCapture`: both give one key.
    return key.removeprefix("edgevision") or key


def parse_image_overrides(pairs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """`IMAGE=COMMAND` strings (CLI) -> image -> argv."""
    overrides: dict[str, tuple[str, ...]] = {}
    for pair in pairs:
        image, sep, command = pair.partition("=")
        if not sep or not image.strip() or not command.strip():
            raise ImageError(f"--image {pair!r}: expected IMAGE=COMMAND")
        overrides[image.strip()] = tuple(shlex.split(command))
    return overrides


def resolve_image(image: str, overrides: Mapping[str, Sequence[str]] | None = None) -> LocalImage:
    """The local entry point for `image`; ImageError when there is none."""
    for key, command in (overrides or {}).items():
        if key == image or image_key(key) == image_key(image):
            return LocalImage(key, tuple(command))
    local = BUILTIN_IMAGES.get(image_key(image))
    if local is None:
        known = ", ".join(f"${{MODULES.{i.name}}}" for i in BUILTIN_IMAGES.values())
        raise ImageError(
            f"image {image!r} has no local entry point (known: {known}; map others with --image IMAGE=COMMAND)"
        )
    return local

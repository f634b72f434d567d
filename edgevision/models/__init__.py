"""The one scoring core: load a model, read its metadata, decode + pre-process, infer, post-process.

The service, the camera, the batch engines and the trainer's evaluation all call this package, so a model
scores the same everywhere. It knows no web server, engine or training code.
"""

from edgevision.models.images import ACCEPTED_FORMATS, DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image
from edgevision.models.model import (
    DEFAULT_MODEL_DIR,
    ImageModel,
    ModelLoadError,
    Prediction,
    Preprocessing,
    load_model,
    open_session,
)

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MODEL_DIR",
    "ImageDecodeError",
    "ImageModel",
    "ModelLoadError",
    "Prediction",
    "Preprocessing",
    "decode_image",
    "load_model",
    "open_session",
]

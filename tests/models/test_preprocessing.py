"""Pre-processing as the model's metadata describes it, and the guards around odd image shapes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edgevision.demo import DEMO_PHOTOS
from edgevision.models import ImageDecodeError, ImageModel, Preprocessing, decode_image
from edgevision.models.images import MAX_ASPECT_RATIO

IMAGENET = {
    "CustomVision.Preprocess.ResizeMethod": "ByShorterSide",
    "CustomVision.Preprocess.TargetWidth": "256.0",
    "CustomVision.Preprocess.TargetHeight": "256.0",
    "CustomVision.Preprocess.CropMethod": "OneCropCenter",
    "Image.BitmapPixelFormat": "Rgb8",
    "Image.NominalPixelRange": "Normalized_0_1",
}


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_shorter_side_resize_and_centre_crop_match_the_two_step_definition() -> None:
    # The one-step resampling of the crop box must give the pixels of "scale, then crop" (to rounding).
    photo = decode_image((DEMO_PHOTOS / "darknet" / "dog.jpg").read_bytes())
    step = Preprocessing.from_metadata(IMAGENET, 224, 224)
    one_step = np.asarray(step._shorter_side_then_crop(photo), np.float32)
    factor = 256 / min(photo.size)
    scaled = photo.resize((round(photo.width * factor), round(photo.height * factor)), Image.BILINEAR)
    left, top = (scaled.width - 224) // 2, (scaled.height - 224) // 2
    two_step = np.asarray(scaled.crop((left, top, left + 224, top + 224)), np.float32)
    assert one_step.shape == (224, 224, 3)
    assert np.abs(one_step - two_step).max() <= 1.0
    assert np.abs(one_step - two_step).mean() < 0.01


def test_long_thin_image_within_the_aspect_limit_is_scored(default_model: ImageModel) -> None:
    # 9900 x 99 scales to ~25600 x 256 by definition; only its 224 x 224 centre window is resampled.
    strip = Image.fromarray(np.tile(np.arange(99, dtype=np.uint8)[:, None, None], (1, 9900, 3)))
    predictions = default_model.predict(png(strip))
    assert len(predictions) == 1000
    assert default_model.preprocess(strip).shape == (3, 224, 224)


def test_extreme_aspect_ratio_is_refused_by_the_decoder() -> None:
    strip = Image.new("RGB", (MAX_ASPECT_RATIO * 3 + 1, 3))
    with pytest.raises(ImageDecodeError) as error:
        decode_image(png(strip))
    assert error.value.code == "BadRequestImageDimensions"
    assert f"{MAX_ASPECT_RATIO * 3 + 1} x 3" in error.value.message


def test_bgr_and_0_255_models_get_bgr_0_255_pixels() -> None:
    classic = Preprocessing.from_metadata({"Image.BitmapPixelFormat": "Bgr8"}, 4, 4)
    pixels = classic(Image.new("RGB", (8, 8), (10, 20, 30)))
    assert pixels.shape == (3, 4, 4)
    assert pixels[:, 0, 0].tolist() == [30.0, 20.0, 10.0]


def test_unknown_resize_method_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="ResizeMethod"):
        Preprocessing.from_metadata({"CustomVision.Preprocess.ResizeMethod": "Fancy"}, 224, 224)

"""The guarded decoder: every accepted format, EXIF orientation, first GIF frame, and each bad input."""

from __future__ import annotations

import imagegen
import numpy as np
import pytest
from PIL import Image

from edgevision.models import ImageDecodeError, decode_image


@pytest.fixture(scope="module")
def zebra() -> Image.Image:
    return imagegen.photo().resize((320, 240))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP"])
def test_accepted_formats_decode_to_rgb(zebra: Image.Image, fmt: str) -> None:
    image = decode_image(imagegen.encode(zebra, fmt))
    assert image.mode == "RGB" and image.size == zebra.size


def test_lossless_formats_keep_the_pixels(zebra: Image.Image) -> None:
    for fmt in ("PNG", "BMP"):
        assert np.array_equal(np.asarray(decode_image(imagegen.encode(zebra, fmt))), np.asarray(zebra))


def test_grayscale_and_alpha_become_rgb(zebra: Image.Image) -> None:
    assert decode_image(imagegen.encode(zebra.convert("L"), "PNG")).mode == "RGB"
    assert decode_image(imagegen.encode(zebra.convert("RGBA"), "PNG")).mode == "RGB"


def test_animated_gif_gives_its_first_frame() -> None:
    red, blue = Image.new("RGB", (64, 48), (255, 0, 0)), Image.new("RGB", (64, 48), (0, 0, 255))
    pixels = np.asarray(decode_image(imagegen.animated_gif(red, blue)))
    assert pixels[..., 0].mean() > 200 and pixels[..., 2].mean() < 50
    pixels = np.asarray(decode_image(imagegen.animated_gif(blue, red)))
    assert pixels[..., 2].mean() > 200 and pixels[..., 0].mean() < 50


def test_exif_orientation_is_applied(zebra: Image.Image) -> None:
    data = imagegen.exif_rotated_jpeg(zebra)
    stored = imagegen.without_exif(data)
    assert stored.size == (240, 320)  # stored sideways
    image = decode_image(data)
    assert image.size == zebra.size  # upright again
    assert np.array_equal(np.asarray(image), np.asarray(stored.transpose(Image.Transpose.ROTATE_270)))


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (lambda: b"", "BadRequestImageFormat"),
        (imagegen.random_bytes, "BadRequestImageFormat"),
        (imagegen.truncated_jpeg, "BadRequestImageFormat"),
        (lambda: b"%PDF-1.4\n" + b"0" * 100, "BadRequestImageFormat"),
        (imagegen.png_bomb, "BadRequestImageDimensions"),
    ],
    ids=["empty", "random", "truncated-jpeg", "pdf", "png-bomb-30000x30000"],
)
def test_bad_input_is_a_decode_error(payload, code: str) -> None:
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(payload())
    assert caught.value.code == code
    assert caught.value.message


def test_pixel_limit_is_configurable(zebra: Image.Image) -> None:
    data = imagegen.encode(zebra, "PNG")
    with pytest.raises(ImageDecodeError, match="320 x 240"):
        decode_image(data, max_pixels=320 * 240 - 1)
    assert decode_image(data, max_pixels=320 * 240).size == (320, 240)

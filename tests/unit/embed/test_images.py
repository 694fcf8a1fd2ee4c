"""Decoding stored images: whitelisted formats, bombs refused, reasons given."""

from __future__ import annotations

import io
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from pixsearch.embed.images import UndecodableImage, decode
from tests.fixtures.images import make_image, make_png_bomb


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_decodes_whitelisted_formats_to_rgb(fmt: str):
    image = decode(make_image((10, 20, 30), size=(40, 30), fmt=fmt), max_pixels=10_000)
    assert (image.mode, image.size) == ("RGB", (40, 30))


def test_refuses_bytes_that_are_not_an_image():
    with pytest.raises(UndecodableImage, match="cannot decode"):
        decode(b"<html>not an image</html>", max_pixels=10_000)


def test_refuses_a_truncated_image():
    data = make_image((10, 20, 30), size=(64, 64), fmt="PNG")
    with pytest.raises(UndecodableImage):
        decode(data[: len(data) // 2], max_pixels=10_000)


def test_refuses_formats_outside_the_whitelist():
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="ICO")
    with pytest.raises(UndecodableImage, match="cannot decode"):
        decode(buffer.getvalue(), max_pixels=10_000)


def test_refuses_images_over_the_pixel_limit_and_bombs():
    with pytest.raises(UndecodableImage, match="pixel limit"):
        decode(make_image(size=(200, 100), fmt="PNG"), max_pixels=10_000)
    with pytest.raises(UndecodableImage):
        decode(make_png_bomb(), max_pixels=10_000)


def test_concurrent_decodes_leave_the_process_warning_filters_alone():
    """Warning filters are process-wide: a decoder that changed them for its own call
    would, from several threads at once, leave them changed for everyone."""
    images = [make_image((i, 20, 30), size=(256, 256), fmt="PNG") for i in range(8)]
    before = list(warnings.filters)

    def decode_all(data: bytes) -> None:
        for _ in range(40):
            decode(data, max_pixels=1_000_000)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(decode_all, images))
    assert warnings.filters == before

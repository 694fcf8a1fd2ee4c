"""The image module: accepted formats, damaged data, bombs, resize, full decoding to RGB."""

from __future__ import annotations

import hashlib
import io
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from pixsearch.images import InvalidImage, declared_pixels, decode, validate
from tests.fixtures.images import make_image, make_png_bomb

LIMIT = 10_000_000


@pytest.mark.parametrize(
    ("fmt", "ext", "mime"),
    [
        ("JPEG", "jpg", "image/jpeg"),
        ("PNG", "png", "image/png"),
        ("WEBP", "webp", "image/webp"),
        ("GIF", "gif", "image/gif"),
        ("BMP", "bmp", "image/bmp"),
        ("TIFF", "tiff", "image/tiff"),
    ],
)
def test_accepted_formats_keep_original_bytes(fmt: str, ext: str, mime: str) -> None:
    data = make_image((10, 120, 200), size=(40, 30), fmt=fmt, shape="circle")
    image = validate(data, max_pixels=LIMIT)
    assert image.data == data
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert (image.ext, image.content_type, image.width, image.height) == (ext, mime, 40, 30)


def test_animated_gif_is_accepted_by_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    assert validate(buffer.getvalue(), max_pixels=LIMIT).ext == "gif"


def _reason(data: bytes, **kwargs: object) -> str:
    with pytest.raises(InvalidImage) as caught:
        validate(data, max_pixels=int(kwargs.pop("max_pixels", LIMIT)), **kwargs)  # type: ignore[arg-type]
    return caught.value.reason


def test_truncated_jpeg_and_png_are_corrupt() -> None:
    jpeg = make_image((1, 2, 3), size=(256, 256), shape="stripes")
    png = make_image((1, 2, 3), size=(256, 256), fmt="PNG", shape="stripes")
    assert _reason(jpeg[: len(jpeg) * 2 // 3]) == "corrupt"
    assert _reason(png[: len(png) * 2 // 3]) == "corrupt"


def test_png_decompression_bomb() -> None:
    assert _reason(make_png_bomb()) == "bomb"


def test_pixel_limit_is_the_setting_not_pillows() -> None:
    assert _reason(make_image(size=(100, 100)), max_pixels=9_999) == "bomb"


def test_non_images() -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    assert _reason(b"<html><body>hello</body></html>", content_type="text/html") == "not_image"
    assert _reason(svg, content_type="image/svg+xml") == "unsupported_format"
    assert _reason(b"") == "not_image"


def test_known_but_unaccepted_format() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="ICO")
    assert _reason(buffer.getvalue()) == "unsupported_format"


def test_resize_applies_exif_orientation_and_bounds_the_longest_side() -> None:
    image = Image.new("RGB", (400, 200), (200, 10, 10))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    resized = validate(buffer.getvalue(), max_pixels=LIMIT, resize_max_side=100)
    assert (resized.width, resized.height) == (50, 100)
    with Image.open(io.BytesIO(resized.data)) as stored:
        assert stored.size == (50, 100)


def test_resize_leaves_small_images_alone() -> None:
    data = make_image(size=(60, 40), fmt="PNG")
    assert validate(data, max_pixels=LIMIT, resize_max_side=100).data == data


def test_resized_gif_is_stored_as_png() -> None:
    data = make_image(size=(300, 100), fmt="GIF", shape="square")
    resized = validate(data, max_pixels=LIMIT, resize_max_side=150)
    assert (resized.ext, resized.width, resized.height) == ("png", 150, 50)


def test_header_only_check_still_catches_cut_jpegs_and_pngs() -> None:
    jpeg = make_image((1, 2, 3), size=(256, 256), shape="stripes")
    png = make_image((1, 2, 3), size=(256, 256), fmt="PNG", shape="stripes")
    assert validate(jpeg, max_pixels=LIMIT, decode=False).data == jpeg
    assert validate(png, max_pixels=LIMIT, decode=False).data == png
    assert _reason(jpeg[: len(jpeg) * 2 // 3], decode=False) == "corrupt"
    assert _reason(png[: len(png) * 2 // 3], decode=False) == "corrupt"
    assert _reason(make_png_bomb(), decode=False) == "bomb"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_decode_gives_rgb_of_every_accepted_format(fmt: str) -> None:
    decoded = decode(make_image((10, 20, 30), size=(40, 30), fmt=fmt), max_pixels=LIMIT)
    assert (decoded.image.mode, decoded.image.size) == ("RGB", (40, 30))
    assert (decoded.width, decoded.height) == (40, 30)


@pytest.mark.parametrize(
    ("stored", "resized_to", "decoded_size"),
    [
        ((800, 600), (32, 32), (100, 75)),  # 1/8: both sides still >= 2 x 32
        ((800, 600), (224, 224), (800, 600)),  # 600 < 2 x 2 x 224: no reduction
        ((1000, 900), (224, 224), (500, 450)),  # 1/2
        ((500, 70), (32, 32), (500, 70)),  # the short side decides
    ],
)
def test_a_jpeg_is_decoded_reduced_to_twice_the_size_it_is_resized_to(
    stored: tuple[int, int], resized_to: tuple[int, int], decoded_size: tuple[int, int]
) -> None:
    decoded = decode(
        make_image(size=stored, shape="circle"), max_pixels=LIMIT, resized_to=resized_to
    )
    assert decoded.image.size == decoded_size
    assert (decoded.width, decoded.height, decoded.image.mode) == (*stored, "RGB")


def test_only_jpegs_are_decoded_reduced() -> None:
    png = make_image(size=(800, 600), fmt="PNG", shape="circle")
    assert decode(png, max_pixels=LIMIT, resized_to=(32, 32)).image.size == (800, 600)


def test_a_reduced_decode_still_refuses_damaged_jpegs() -> None:
    jpeg = make_image((1, 2, 3), size=(512, 512), shape="stripes")
    with pytest.raises(InvalidImage) as caught:
        decode(jpeg[: len(jpeg) * 2 // 3], max_pixels=LIMIT, resized_to=(32, 32))
    assert caught.value.reason == "corrupt"


def _decode_reason(data: bytes, max_pixels: int = LIMIT) -> str:
    with pytest.raises(InvalidImage) as caught:
        decode(data, max_pixels=max_pixels)
    return caught.value.reason


def test_decode_refuses_what_validate_refuses() -> None:
    jpeg = make_image((1, 2, 3), size=(256, 256), shape="stripes")
    png = make_image((1, 2, 3), size=(256, 256), fmt="PNG", shape="stripes")
    ico = io.BytesIO()
    Image.new("RGB", (16, 16)).save(ico, format="ICO")
    assert _decode_reason(jpeg[: len(jpeg) * 2 // 3]) == "corrupt"
    assert _decode_reason(png[: len(png) * 2 // 3]) == "corrupt"
    assert _decode_reason(make_png_bomb()) == "bomb"
    assert _decode_reason(make_image(size=(200, 100), fmt="PNG"), max_pixels=10_000) == "bomb"
    assert _decode_reason(b"<html>not an image</html>") == "not_image"
    assert _decode_reason(ico.getvalue()) == "unsupported_format"


def test_concurrent_decodes_leave_the_process_warning_filters_alone() -> None:
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


def test_declared_pixels_reads_the_header_only() -> None:
    assert declared_pixels(make_image(size=(40, 30), fmt="JPEG")) == 1200
    assert declared_pixels(make_png_bomb()) > LIMIT
    assert declared_pixels(b"not an image") == 0

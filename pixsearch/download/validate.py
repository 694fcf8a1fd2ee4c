"""Image validation with Pillow: whitelist, bomb cap, decode check, optional resize.

``verify()`` catches structural damage without decoding (only PNG's checks
anything: chunk CRCs); a fresh open and ``load()`` then decodes the pixels,
which is what catches truncated or corrupt data. JPEGs are decoded at reduced
scale and in grey (``draft``): every entropy-coded byte is still read, so
truncation and corruption are caught, at a fraction of a full decode's cost.

Decoding is most of the download stage's CPU time. With ``decode=False``
(``PIXSEARCH_DOWNLOAD_DECODE=false``) only headers, the bomb cap, PNG CRCs and
the JPEG end marker are checked; damage inside the pixel data then surfaces
when the embed stage decodes the image.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from pixsearch.download.outcome import DownloadFailure

FORMATS: dict[str, str] = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tiff",
}
"""Accepted Pillow formats and the file extension each is stored under."""

_RESIZED_FORMAT = {"GIF": "PNG", "BMP": "PNG", "TIFF": "PNG"}
_VERIFIES = frozenset({"PNG"})
"""Formats whose ``verify()`` checks anything (PNG chunk CRCs); for the others it is a no-op."""

ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class ValidImage:
    data: bytes
    sha256: str
    ext: str
    content_type: str
    width: int
    height: int


def validate_image(
    data: bytes,
    *,
    max_pixels: int,
    resize_max_side: int = 0,
    content_type: str = "",
    decode: bool = True,
) -> ValidImage:
    """The image to store for ``data``; :class:`DownloadFailure` with a reason code otherwise.

    Stores the original bytes unless ``resize_max_side`` asks for a smaller
    image than the one received; a resized image is EXIF-oriented first.
    """
    fmt, size = _check(data, max_pixels, content_type, decode)
    if resize_max_side and max(size) > resize_max_side:
        data, fmt, size = _resize(data, resize_max_side, fmt)
    return ValidImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        ext=FORMATS[fmt],
        content_type=Image.MIME[fmt],
        width=size[0],
        height=size[1],
    )


def _check(
    data: bytes, max_pixels: int, content_type: str, decode: bool
) -> tuple[str, tuple[int, int]]:
    try:
        image = Image.open(io.BytesIO(data), formats=list(FORMATS))
        fmt, size = str(image.format), image.size
        _check_pixels(size, max_pixels)
        if fmt in _VERIFIES:
            image.verify()
            image = Image.open(io.BytesIO(data), formats=[fmt])
        with image:
            if not decode:
                _check_end(fmt, data)
            else:
                if fmt == "JPEG":
                    image.draft("L", (max(1, size[0] // 8), max(1, size[1] // 8)))
                image.seek(0)
                image.load()
    except DownloadFailure:
        raise
    except Image.DecompressionBombError as error:
        raise DownloadFailure("bomb", str(error)) from None
    except UnidentifiedImageError:
        raise _unidentified(data, content_type) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as error:
        raise DownloadFailure("corrupt", f"image data is damaged: {error}") from None
    return fmt, size


def _check_end(fmt: str, data: bytes) -> None:
    """A JPEG cut short lacks its end-of-image marker (trailing padding tolerated)."""
    if fmt == "JPEG" and b"\xff\xd9" not in data[-1024:]:
        raise DownloadFailure("corrupt", "JPEG has no end-of-image marker: it is truncated")


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    if size[0] * size[1] > max_pixels:
        raise DownloadFailure(
            "bomb",
            f"{size[0]}x{size[1]} = {size[0] * size[1]} pixels exceeds the limit of {max_pixels} "
            "(PIXSEARCH_DOWNLOAD_MAX_PIXELS)",
        )
    if min(size) < 1:
        raise DownloadFailure("corrupt", f"image has no pixels ({size[0]}x{size[1]})")


def _unidentified(data: bytes, content_type: str) -> DownloadFailure:
    try:
        with Image.open(io.BytesIO(data)) as image:
            other = image.format
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        other = None
    if other is not None:
        return DownloadFailure(
            "unsupported_format", f"{other} is not one of the accepted formats {list(FORMATS)}"
        )
    if content_type.startswith("image/"):
        return DownloadFailure(
            "unsupported_format", f"{content_type} is not one of the accepted formats"
        )
    shown = content_type or "unknown content type"
    return DownloadFailure("not_image", f"not an image ({shown}, {len(data)} bytes)")


def _resize(data: bytes, max_side: int, fmt: str) -> tuple[bytes, str, tuple[int, int]]:
    with Image.open(io.BytesIO(data), formats=[fmt]) as image:
        image.seek(0)
        oriented = ImageOps.exif_transpose(image)
        oriented.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out_fmt = _RESIZED_FORMAT.get(fmt, fmt)
        if out_fmt == "JPEG" and oriented.mode not in ("RGB", "L"):
            oriented = oriented.convert("RGB")
        buffer = io.BytesIO()
        oriented.save(buffer, format=out_fmt, **({"quality": 90} if out_fmt == "JPEG" else {}))
        return buffer.getvalue(), out_fmt, oriented.size

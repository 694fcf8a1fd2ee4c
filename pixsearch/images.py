"""Decoding and checking an image: the one place (download, embed and search use it).

Only whitelisted formats are opened, the pixel cap is the setting's (a
decompression bomb is an error with reason ``bomb``), PNG chunk CRCs are
checked with ``verify()`` and the pixels are decoded, which is what catches
truncated or corrupt data. Every refusal is an :class:`InvalidImage` with a
stable reason code (``not_image``, ``unsupported_format``, ``corrupt``,
``bomb``) and a message.

Two entry points:

* :func:`validate` checks received bytes and says how to store them (the
  download stage). JPEGs are decoded at reduced scale and in grey (``draft``):
  every entropy-coded byte is still read, so truncation and corruption are
  caught at a fraction of a full decode's cost. With ``decode=False`` only
  headers, the pixel cap, PNG CRCs and the JPEG end marker are checked.
* :func:`decode` checks and decodes to RGB in one parse (the embed stage and
  query images). Given the size a model resizes to, a JPEG is decoded at a
  reduced DCT scale that keeps both sides at least :data:`REDUCING_GAP` times
  that size (the rule of Pillow's ``thumbnail``): the model's own resize then
  still starts from twice its target, at a fraction of a full decode's cost.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

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
_DAMAGE = (OSError, SyntaxError, ValueError, EOFError, IndexError)
REDUCING_GAP = 2
"""A reduced JPEG decode keeps both sides at least this many times the caller's target."""

ImageFile.LOAD_TRUNCATED_IMAGES = False


class InvalidImage(ValueError):
    """Not an acceptable image: ``reason`` is a stable code, the message says more."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ValidImage:
    """What to store for a received image: its bytes (maybe resized), hash, type and size."""

    data: bytes
    sha256: str
    ext: str
    content_type: str
    width: int
    height: int


def validate(
    data: bytes,
    *,
    max_pixels: int,
    resize_max_side: int = 0,
    content_type: str = "",
    decode: bool = True,
) -> ValidImage:
    """The image to store for ``data``; :class:`InvalidImage` with a reason code otherwise.

    Stores the original bytes unless ``resize_max_side`` asks for a smaller
    image than the one received; a resized image is EXIF-oriented first.
    """
    with _opened(data, max_pixels, content_type) as image:
        fmt, size = str(image.format), image.size
        with _damage_is_corrupt():
            if not decode:
                _check_end(fmt, data)
            else:
                if fmt == "JPEG":
                    image.draft("L", (max(1, size[0] // 8), max(1, size[1] // 8)))
                image.seek(0)
                image.load()
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


@dataclass(frozen=True)
class Decoded:
    """An RGB image and the size of the stored image (larger when the decode was reduced)."""

    image: Image.Image
    width: int
    height: int


def decode(
    data: bytes,
    *,
    max_pixels: int,
    content_type: str = "",
    resized_to: tuple[int, int] | None = None,
) -> Decoded:
    """``data`` checked as :func:`validate` does and decoded as an RGB image.

    ``resized_to`` is the (width, height) the caller will resize the image to: a
    JPEG is then decoded at the smallest scale keeping both sides at least
    :data:`REDUCING_GAP` times it. Every entropy-coded byte is read either way, so
    damage is caught as in a full decode.
    """
    with _opened(data, max_pixels, content_type) as image, _damage_is_corrupt():
        width, height = image.size
        if resized_to is not None and image.format == "JPEG":
            image.draft("RGB", (resized_to[0] * REDUCING_GAP, resized_to[1] * REDUCING_GAP))
        image.seek(0)
        image.load()
        return Decoded(image.convert("RGB"), width, height)


def declared_pixels(data: bytes) -> int:
    """The pixel count ``data``'s header declares, read without decoding (0 when it has
    no accepted header Pillow reads: :func:`validate` then refuses it undecoded)."""
    try:
        with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
            return image.width * image.height
    except Exception:  # noqa: BLE001 - unreadable headers are validate's to report
        return 0


@contextmanager
def _damage_is_corrupt() -> Iterator[None]:
    """Pillow's many "damaged data" exceptions as ``InvalidImage("corrupt")`` (bombs: "bomb")."""
    try:
        yield
    except (InvalidImage, UnidentifiedImageError):
        raise
    except Image.DecompressionBombError as error:
        raise InvalidImage("bomb", str(error)) from None
    except _DAMAGE as error:
        raise InvalidImage("corrupt", f"image data is damaged: {error}") from None


def _opened(data: bytes, max_pixels: int, content_type: str) -> Image.Image:
    """The image opened lazily from ``data``, format whitelisted, pixel cap and PNG CRCs checked."""
    try:
        with _damage_is_corrupt():
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
            fmt = str(image.format)
            _check_pixels(image.size, max_pixels)
            if fmt in _VERIFIES:
                image.verify()
                image = Image.open(io.BytesIO(data), formats=[fmt])
            return image
    except UnidentifiedImageError:
        raise _unidentified(data, content_type) from None


def _check_end(fmt: str, data: bytes) -> None:
    """A JPEG cut short lacks its end-of-image marker (trailing padding tolerated)."""
    if fmt == "JPEG" and b"\xff\xd9" not in data[-1024:]:
        raise InvalidImage("corrupt", "JPEG has no end-of-image marker: it is truncated")


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    if size[0] * size[1] > max_pixels:
        raise InvalidImage(
            "bomb",
            f"{size[0]}x{size[1]} = {size[0] * size[1]} pixels exceeds the limit of {max_pixels} "
            "(PIXSEARCH_DOWNLOAD_MAX_PIXELS)",
        )
    if min(size) < 1:
        raise InvalidImage("corrupt", f"image has no pixels ({size[0]}x{size[1]})")


def _unidentified(data: bytes, content_type: str) -> InvalidImage:
    try:
        with Image.open(io.BytesIO(data)) as image:
            other = image.format
    except (UnidentifiedImageError, *_DAMAGE):
        other = None
    if other is not None:
        return InvalidImage(
            "unsupported_format", f"{other} is not one of the accepted formats {list(FORMATS)}"
        )
    if content_type.startswith("image/"):
        return InvalidImage(
            "unsupported_format", f"{content_type} is not one of the accepted formats"
        )
    shown = content_type or "unknown content type"
    return InvalidImage("not_image", f"not an image ({shown}, {len(data)} bytes)")


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

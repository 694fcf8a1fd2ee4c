"""Decoding stored images for the model, with Pillow's own guards."""

from __future__ import annotations

import io
import warnings

from PIL import Image

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


class UndecodableImage(ValueError):
    """An object under ``images/`` that is not an image the model can read."""


def decode(data: bytes, *, max_pixels: int) -> Image.Image:
    """An RGB image from ``data``; :class:`UndecodableImage` with the reason otherwise.

    Only whitelisted formats are opened, and a decompression bomb is an error,
    not a warning.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as probe:
                probe.verify()
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            if image.width * image.height > max_pixels:
                raise UndecodableImage(
                    f"{image.width}x{image.height} exceeds the {max_pixels} pixel limit"
                )
            image.load()
            return image.convert("RGB")
    except UndecodableImage:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UndecodableImage(f"cannot decode image ({type(error).__name__}: {error})") from None
    except Image.DecompressionBombWarning as warning:
        raise UndecodableImage(f"decompression bomb refused ({warning})") from None

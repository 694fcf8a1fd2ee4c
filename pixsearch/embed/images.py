"""Decoding stored images for the model, with Pillow's own guards."""

from __future__ import annotations

import io

from PIL import Image

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


class UndecodableImage(ValueError):
    """An object under ``images/`` that is not an image the model can read."""


def decode(data: bytes, *, max_pixels: int) -> Image.Image:
    """An RGB image from ``data``; :class:`UndecodableImage` with the reason otherwise.

    Only whitelisted formats are opened, and the pixel count is checked against
    ``max_pixels`` before any pixel is decoded. (The check is explicit rather than
    Pillow's bomb warning turned into an error: warning filters are process-wide, and
    changing them from concurrent requests is not thread-safe.)
    """
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as probe:
            if probe.width * probe.height > max_pixels:
                raise UndecodableImage(
                    f"{probe.width}x{probe.height} exceeds the {max_pixels} pixel limit"
                )
            probe.verify()
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        image.load()
        return image.convert("RGB")
    except UndecodableImage:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UndecodableImage(f"cannot decode image ({type(error).__name__}: {error})") from None

"""open_clip's evaluation transform in Pillow + numpy: resize, centre crop, scale, normalize.

Equal to ``open_clip.image_transform(..., is_train=False)`` for the resize modes
below (tests compare the two on many image sizes): torchvision's ``Resize`` on a
PIL image is Pillow's own ``resize`` with the output size computed as here, and
``ToTensor`` + ``Normalize`` are the same float32 arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

RESIZE_MODES = ("shortest", "squash")
_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


class UnsupportedPreprocessing(ValueError):
    """The model's transform is one this module does not reproduce exactly."""


@dataclass(frozen=True)
class Preprocessing:
    """The constants of a model's transform, as stored beside its exported graphs."""

    image_size: tuple[int, int]  # (height, width)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_mode: str = "shortest"
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise UnsupportedPreprocessing(
                f"resize mode {self.resize_mode!r} is not supported (only {RESIZE_MODES})"
            )
        if self.resize_mode == "shortest" and self.image_size[0] != self.image_size[1]:
            raise UnsupportedPreprocessing("resize mode 'shortest' needs a square image size")
        if self.interpolation not in _FILTERS:
            raise UnsupportedPreprocessing(f"interpolation {self.interpolation!r} not supported")

    @classmethod
    def from_open_clip(cls, config: Mapping[str, Any]) -> Preprocessing:
        """From an open_clip ``visual.preprocess_cfg`` (size, mean, std, resize mode...)."""
        size = config["size"]
        size = (size, size) if isinstance(size, int) else tuple(size)
        interpolation = config.get("interpolation") or "bicubic"
        return cls(
            image_size=(int(size[0]), int(size[1])),
            mean=tuple(float(v) for v in config["mean"]),
            std=tuple(float(v) for v in config["std"]),
            resize_mode=config.get("resize_mode") or "shortest",
            interpolation="bicubic" if interpolation == "random" else interpolation,
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Preprocessing:
        return cls(
            image_size=tuple(data["image_size"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            resize_mode=data["resize_mode"],
            interpolation=data["interpolation"],
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def __call__(self, image: Image.Image) -> np.ndarray:
        """The ``(3, H, W)`` float32 array the image encoder takes."""
        height, width = self.image_size
        image = image.convert("RGB")
        image = image.resize(self._resized_size(image.size), _FILTERS[self.interpolation])
        if self.resize_mode == "shortest":
            left = int(round((image.width - width) / 2.0))
            top = int(round((image.height - height) / 2.0))
            image = image.crop((left, top, left + width, top + height))
        pixels = np.asarray(image, dtype=np.float32) / np.float32(255)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))

    def _resized_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) after the resize step, computed as torchvision does."""
        if self.resize_mode == "squash":
            return self.image_size[1], self.image_size[0]
        width, height = size
        short, long = min(width, height), max(width, height)
        new_short, new_long = self.image_size[0], int(self.image_size[0] * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)

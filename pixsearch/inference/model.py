"""The model interface the embed stage and the search service use, whatever the runtime.

A :class:`ClipModel` preprocesses images into numpy arrays, encodes batches of
them and encodes texts, always to float32 unit vectors. Its ``tag`` is the
source model's tag (name + weights), the same on every runtime, so an index
built with one runtime is queried with the other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from PIL import Image

TINY_MODEL = "pixsearch-tiny"
RUNTIMES = ("onnx", "torch")
TOWERS = ("image", "text")


class ModelUnavailable(RuntimeError):
    """The model cannot be had; the message names the setting or command that fixes it."""


class ClipModel(ABC):
    """A CLIP image + text encoder producing L2-normalised float32 vectors."""

    name: str
    pretrained: str
    tag: str
    dim: int
    runtime: str
    input_size: tuple[int, int]
    """(width, height) the preprocessing resizes images to (decoders may reduce to it)."""

    @abstractmethod
    def load_towers(self, *towers: str) -> None:
        """Load the named encoders (``image``, ``text``; both without names) now."""

    @abstractmethod
    def preprocess(self, image: Image.Image) -> np.ndarray:
        """The ``(3, H, W)`` float32 input of the image encoder for ``image`` (any mode)."""

    @abstractmethod
    def encode_pixels(self, batch: np.ndarray) -> np.ndarray:
        """``(n, dim)`` unit vectors for a preprocessed ``(n, 3, H, W)`` batch."""

    @abstractmethod
    def _encode_texts(self, texts: list[str]) -> np.ndarray: ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """``(n, dim)`` unit vectors for ``images``."""
        if not images:
            return np.empty((0, self.dim), dtype=np.float32)
        return self.encode_pixels(np.stack([self.preprocess(image) for image in images]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, dim)`` unit vectors for ``texts``."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return self._encode_texts(list(texts))


def unit_float32(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as float32 (the graphs normalise; this makes it exact)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)

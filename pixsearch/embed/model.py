"""The open_clip model: loaded once per process, encodes images and texts to unit vectors.

``PIXSEARCH_MODEL=pixsearch-tiny`` with ``PIXSEARCH_PRETRAINED=""`` is a tiny
config shipped with the package (random init, fixed seed): every test uses it
and none downloads weights.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image

from pixsearch.config import Settings
from pixsearch.embed.weights import ModelUnavailable, resolve, unavailable
from pixsearch.layout import model_tag

__all__ = ["ClipModel", "ModelUnavailable", "create_model", "load_model", "TINY_MODEL"]

TINY_MODEL = "pixsearch-tiny"
RANDOM_INIT_SEED = 0

_CONFIGS = Path(str(files("pixsearch.embed") / "model_configs"))
_loaded: dict[tuple[str, str, str], ClipModel] = {}
_load_lock = threading.Lock()


@dataclass
class ClipModel:
    """An open_clip model in eval mode with its own preprocessing transform and tokenizer."""

    name: str
    pretrained: str
    tag: str
    dim: int
    preprocess: Callable[[Image.Image], torch.Tensor]
    module: torch.nn.Module
    tokenizer: Callable[[Sequence[str]], torch.Tensor]
    device: str = "cpu"

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32 unit vectors for ``images`` (any mode; converted to RGB)."""
        if not images:
            return np.empty((0, self.dim), dtype=np.float32)
        batch = torch.stack([self.preprocess(image.convert("RGB")) for image in images])
        return self.encode_pixels(batch)

    def encode_pixels(self, batch: torch.Tensor) -> np.ndarray:
        """(n, dim) float32 unit vectors for an already preprocessed ``(n, 3, H, W)`` batch."""
        with torch.inference_mode():
            features = self.module.encode_image(batch.to(self.device), normalize=True)
        return _as_unit_float32(features)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 unit vectors for ``texts``."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.inference_mode():
            features = self.module.encode_text(tokens, normalize=True)
        return _as_unit_float32(features)


def load_model(settings: Settings) -> ClipModel:
    """The model ``settings`` name, created on first use and shared by the whole process."""
    torch.set_num_threads(settings.torch_threads)
    cache_key = (settings.model, settings.pretrained, settings.device)
    with _load_lock:
        if cache_key not in _loaded:
            _loaded[cache_key] = create_model(settings)
        return _loaded[cache_key]


def register_shipped_configs() -> None:
    """Make the configs shipped in ``pixsearch/embed/model_configs`` known to open_clip."""
    if TINY_MODEL not in open_clip.list_models():
        open_clip.add_model_config(_CONFIGS)


def create_model(settings: Settings) -> ClipModel:
    """A new model instance (uncached): random init with a fixed seed when no weights are named."""
    register_shipped_configs()
    name, pretrained = settings.model, settings.pretrained
    if name not in open_clip.list_models():
        raise ModelUnavailable(
            f"unknown model PIXSEARCH_MODEL={name!r}; open_clip knows "
            f"{len(open_clip.list_models())} models, e.g. ViT-B-32 or {TINY_MODEL}"
        )
    source = resolve(name, pretrained, settings.model_cache_dir)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            module, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=source, device=settings.device
            )
    except Exception as error:  # noqa: BLE001 - hub, file and format errors all mean "no weights"
        raise unavailable(name, pretrained, f"{type(error).__name__}: {error}") from error
    module.eval()
    return ClipModel(
        name=name,
        pretrained=pretrained,
        tag=model_tag(name, pretrained),
        dim=int(open_clip.get_model_config(name)["embed_dim"]),
        preprocess=preprocess,
        module=module,
        tokenizer=open_clip.get_tokenizer(name),
        device=settings.device,
    )


def _as_unit_float32(features: torch.Tensor) -> np.ndarray:
    vectors = features.float().cpu().numpy()
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)

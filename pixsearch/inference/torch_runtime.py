"""The torch runtime: the open_clip model itself, eager, with open_clip's transform and tokenizer.

It is the reference the ONNX runtime is checked against and the source of the
export. ``PIXSEARCH_MODEL=pixsearch-tiny`` with ``PIXSEARCH_PRETRAINED=""`` is a
tiny config shipped with the package (random init, fixed seed): tests use it
and none downloads weights.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import numpy as np
import open_clip
import torch
from open_clip.utils import to_2tuple
from PIL import Image

from pixsearch.config import Settings
from pixsearch.inference.model import TINY_MODEL, ClipModel, ModelUnavailable, unit_float32
from pixsearch.inference.weights import resolve, unavailable
from pixsearch.layout import model_tag

RANDOM_INIT_SEED = 0

_CONFIGS = Path(str(files("pixsearch.inference") / "model_configs"))


class TorchClip(ClipModel):
    """An open_clip model in eval mode with its own preprocessing transform and tokenizer."""

    runtime = "torch"

    def __init__(
        self,
        *,
        name: str,
        pretrained: str,
        module: torch.nn.Module,
        transform: Callable[[Image.Image], torch.Tensor],
        tokenizer: Callable[[list[str]], torch.Tensor],
        device: str = "cpu",
    ) -> None:
        self.name, self.pretrained = name, pretrained
        self.tag = model_tag(name, pretrained)
        self.dim = int(open_clip.get_model_config(name)["embed_dim"])
        self.module, self.transform, self.tokenizer = module, transform, tokenizer
        height, width = to_2tuple(module.visual.preprocess_cfg["size"])
        self.input_size = (int(width), int(height))
        self.device = device

    def load_towers(self, *towers: str) -> None:
        """Nothing to do: the module holds both encoders once it is built."""

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self.transform(image.convert("RGB")).numpy()

    def encode_pixels(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            features = self.module.encode_image(
                torch.from_numpy(np.ascontiguousarray(batch)).to(self.device), normalize=True
            )
        return unit_float32(features.float().cpu().numpy())

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts).to(self.device)
        with torch.inference_mode():
            features = self.module.encode_text(tokens, normalize=True)
        return unit_float32(features.float().cpu().numpy())


def register_shipped_configs() -> None:
    """Make the configs shipped in ``pixsearch/inference/model_configs`` known to open_clip."""
    if TINY_MODEL not in open_clip.list_models():
        open_clip.add_model_config(_CONFIGS)


def create_model(settings: Settings) -> TorchClip:
    """A new model instance (uncached): random init with a fixed seed when no weights are named."""
    torch.set_num_threads(settings.torch_threads)
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
            module, _, transform = open_clip.create_model_and_transforms(
                name, pretrained=source, device=settings.device
            )
    except Exception as error:  # noqa: BLE001 - hub, file and format errors all mean "no weights"
        raise unavailable(name, pretrained, f"{type(error).__name__}: {error}") from error
    module.eval()
    return TorchClip(
        name=name,
        pretrained=pretrained,
        module=module,
        transform=transform,
        tokenizer=open_clip.get_tokenizer(name),
        device=settings.device,
    )

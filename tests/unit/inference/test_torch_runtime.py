"""The torch runtime with the tiny shipped model: deterministic unit vectors, weights sources."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from pixsearch.config import Settings
from pixsearch.images import decode
from pixsearch.inference import TINY_MODEL, ClipModel, ModelUnavailable, load_model, probes
from pixsearch.inference.torch_runtime import create_model
from tests.fixtures.images import make_image

TINY = Settings(model=TINY_MODEL, pretrained="", inference="torch")


def _image(color: tuple[int, int, int], shape: str | None = None) -> Image.Image:
    return Image.open(io.BytesIO(make_image(color, shape=shape, fmt="PNG")))


def test_tiny_model_gives_unit_vectors_of_its_dimension(tiny_model: ClipModel):
    expected_dim = open_clip.get_model_config(TINY_MODEL)["embed_dim"]
    images = tiny_model.encode_images([_image((200, 0, 0)), _image((0, 0, 200), "circle")])
    texts = tiny_model.encode_texts(["a red square", "a blue circle", "x"])
    assert tiny_model.dim == expected_dim
    assert images.shape == (2, expected_dim) and texts.shape == (3, expected_dim)
    assert images.dtype == texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, rtol=1e-5)
    assert tiny_model.tag == "pixsearch-tiny__none"


def test_same_image_same_vector_and_different_images_differ(tiny_model: ClipModel):
    red, blue = _image((200, 0, 0)), _image((0, 0, 200), "stripes")
    vectors = tiny_model.encode_images([red, blue, red.copy()])
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert float(vectors[0] @ vectors[1]) < 0.9999


def test_random_init_is_seeded_and_leaves_global_rng_alone(tiny_model: ClipModel):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    other = create_model(TINY)
    assert torch.rand(1) == expected_next
    image = _image((10, 200, 10), "cross")
    np.testing.assert_array_equal(other.encode_images([image]), tiny_model.encode_images([image]))
    np.testing.assert_array_equal(other.encode_texts(["dog"]), tiny_model.encode_texts(["dog"]))


def test_model_loads_once_per_process(tiny_model: ClipModel):
    assert load_model(TINY) is load_model(TINY) is tiny_model


def test_weights_load_from_a_local_checkpoint(tiny_model: ClipModel, tmp_path: Path):
    state = {
        name: value + 0.01 * torch.randn_like(value) if value.is_floating_point() else value
        for name, value in tiny_model.module.state_dict().items()
    }
    checkpoint = tmp_path / "tiny-trained.pt"
    torch.save(state, checkpoint)
    loaded = create_model(Settings(model=TINY_MODEL, pretrained=str(checkpoint)))
    for name, value in loaded.module.state_dict().items():
        torch.testing.assert_close(value, state[name])
    image = _image((120, 60, 30), "triangle")
    assert not np.allclose(loaded.encode_images([image]), tiny_model.encode_images([image]))
    assert loaded.tag == Settings(model=TINY_MODEL, pretrained=str(checkpoint)).model_tag
    assert loaded.tag.startswith("pixsearch-tiny__tiny-trained.pt-")


@pytest.mark.parametrize("content", [None, b"not a checkpoint"])
def test_missing_or_invalid_weights_name_the_setting(tmp_path: Path, content: bytes | None):
    path = tmp_path / "weights.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelUnavailable, match="PIXSEARCH_PRETRAINED") as raised:
        create_model(Settings(model=TINY_MODEL, pretrained=str(path)))
    assert "could not be obtained" in str(raised.value)
    assert str(path) in str(raised.value)


def test_unknown_weights_tag_and_unknown_model_are_clear():
    with pytest.raises(ModelUnavailable, match="PIXSEARCH_PRETRAINED='no-such-tag'"):
        create_model(Settings(model=TINY_MODEL, pretrained="no-such-tag"))
    with pytest.raises(ModelUnavailable, match="PIXSEARCH_MODEL='no-such-model'"):
        create_model(Settings(model="no-such-model", pretrained=""))


def test_a_reduced_jpeg_decode_leaves_the_vector_as_a_full_decode_gives(tiny_model: ClipModel):
    """The embed stage decodes JPEGs reduced to twice the model's input size
    (pixsearch.images.decode): the vectors stay those of a full decode."""
    assert tiny_model.input_size == (32, 32)
    jpegs = []
    for photo in probes.images(seed=3):
        buffer = io.BytesIO()
        photo.convert("RGB").resize((photo.width * 3, photo.height * 3)).save(buffer, "JPEG")
        jpegs.append(buffer.getvalue())
    full = [decode(data, max_pixels=10**8) for data in jpegs]
    reduced = [decode(data, max_pixels=10**8, resized_to=tiny_model.input_size) for data in jpegs]
    assert sum(r.image.width < f.image.width for r, f in zip(reduced, full, strict=True)) >= 4
    cosines = np.sum(
        tiny_model.encode_images([d.image for d in full])
        * tiny_model.encode_images([d.image for d in reduced]),
        axis=1,
    )
    assert cosines.min() >= 0.999, cosines

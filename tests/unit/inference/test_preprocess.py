"""The Pillow + numpy transform equals open_clip's evaluation transform."""

from __future__ import annotations

import io

import numpy as np
import open_clip
import pytest
from PIL import Image

from pixsearch.inference import probes
from pixsearch.inference.preprocess import Preprocessing, UnsupportedPreprocessing
from tests.fixtures.images import SHAPES, distinct_color, make_image

MEAN, STD = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD


def _test_images() -> list[Image.Image]:
    made = probes.images(seed=1)
    for number, fmt in enumerate(["JPEG", "PNG", "WEBP", "GIF"]):
        data = make_image(distinct_color(number), size=(50 + 30 * number, 40), fmt=fmt)
        made.append(Image.open(io.BytesIO(data)))
    made.extend(
        Image.open(io.BytesIO(make_image(distinct_color(n), size=(64, 48), shape=shape)))
        for n, shape in enumerate(SHAPES)
    )
    return made


@pytest.mark.parametrize(
    ("size", "resize_mode", "interpolation"),
    [(224, "shortest", "bicubic"), (32, "shortest", "bicubic"), (224, "squash", "bilinear")],
)
def test_max_abs_difference_to_open_clip_is_below_1e6(
    size: int, resize_mode: str, interpolation: str
) -> None:
    theirs = open_clip.image_transform(
        size,
        is_train=False,
        mean=MEAN,
        std=STD,
        resize_mode=resize_mode,
        interpolation=interpolation,
    )
    ours = Preprocessing((size, size), MEAN, STD, resize_mode, interpolation)
    worst = 0.0
    for image in _test_images():
        expected = theirs(image.convert("RGB")).numpy()
        got = ours(image)
        assert got.shape == expected.shape == (3, size, size) and got.dtype == np.float32
        worst = max(worst, float(np.abs(got - expected).max()))
    assert worst <= 1e-6, f"max abs difference {worst}"


def test_constants_come_from_the_model_config() -> None:
    config = {"size": 224, "mean": MEAN, "std": STD, "resize_mode": "shortest"}
    assert Preprocessing.from_open_clip(config) == Preprocessing((224, 224), MEAN, STD)
    restored = Preprocessing.from_json(Preprocessing((224, 224), MEAN, STD).to_json())
    assert restored == Preprocessing((224, 224), MEAN, STD)


def test_modes_it_cannot_reproduce_are_refused() -> None:
    with pytest.raises(UnsupportedPreprocessing, match="longest"):
        Preprocessing((224, 224), MEAN, STD, resize_mode="longest")
    with pytest.raises(UnsupportedPreprocessing, match="square"):
        Preprocessing((224, 256), MEAN, STD)

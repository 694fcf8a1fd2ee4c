"""Fixed images and texts on which an export is checked against the open_clip model it came from.

Images of many sizes and aspect ratios (gradients, noise, flat colour, grey,
with alpha) and texts with punctuation, numbers, non-Latin scripts, HTML
entities, odd whitespace and more tokens than any context length.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIZES = ((224, 224), (640, 480), (480, 640), (33, 97), (1000, 31), (17, 17), (300, 301), (7, 5))

TEXTS = (
    "a photo of a cat",
    "A RED car, parked   outside.",
    "two dogs playing in the snow at night #winter 2024",
    "l'été à Paris — café & croissants",
    "東京の夜景",
    "Москва зимой",
    "emoji 🐱🚗 and symbols <>&%$",
    "&amp;quot;quoted&amp;quot; html entities &lt;b&gt;",
    "don't won't it's we're they've I'm you'll he'd",
    "",
    "   ",
    "x",
    "a very long caption " * 40,
    "<start_of_text> inside the text <end_of_text>",
    "naïve façade coöperate ﬁne ligature",
)


def images(seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    made: list[Image.Image] = []
    for number, (width, height) in enumerate(SIZES):
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        pixels = ramp * rng.uniform(0.2, 1.0, (1, 1, 3)) + rng.normal(0, 40, (height, width, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        if number % 4 == 1:
            image = image.convert("L")
        elif number % 4 == 2:
            image = image.convert("RGBA")
        made.append(image)
    made.append(Image.new("RGB", (320, 200), (200, 30, 30)))
    return made

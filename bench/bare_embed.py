"""The embed stage's own work without the stack: the baseline of the ViT-B-32 comparison."""

from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bare_embed_loop(
    folder: Path, count: int, model_name: str, inference: str, onnx_dir: Path | None
) -> dict[str, object]:
    """The embed stage's own work on ``count`` images, in this process, nothing else running."""
    import numpy as np

    from pixsearch import images
    from pixsearch.config import Settings
    from pixsearch.inference import load_model

    settings = Settings(
        model=model_name, pretrained="", inference=inference, onnx_dir=str(onnx_dir or "")
    )
    model = load_model(settings)
    model.load_towers("image")
    paths = [folder / f"{n}.jpg" for n in range(count)]
    started, cpu_started = time.monotonic(), time.process_time()
    for first in range(0, count, settings.embed_batch_size):
        pixels = [
            model.preprocess(
                images.decode(
                    path.read_bytes(),
                    max_pixels=settings.download_max_pixels,
                    resized_to=model.input_size,
                ).image
            )
            for path in paths[first : first + settings.embed_batch_size]
        ]
        model.encode_pixels(np.stack(pixels))
    bare_s, cpu_s_used = time.monotonic() - started, time.process_time() - cpu_started
    return {
        "images": count,
        "runtime": f"{model.runtime} {getattr(model, 'precision', '')}".strip(),
        "threads": settings.torch_threads,
        "bare_s": round(bare_s, 1),
        "images_per_s": round(count / bare_s, 2),
        "cpu_ms_per_image": round(1000 * cpu_s_used / count, 1),
    }


def export_vit() -> Path:
    """ViT-B-32 (random weights) exported as `make up` exports its model (fp32 + int8)."""
    from pixsearch.config import Settings
    from pixsearch.inference.export import export

    directory = ROOT / "bench" / ".work" / "onnx"
    export(Settings(model="ViT-B-32", pretrained="", inference="torch"), str(directory))
    return directory

"""Embed benchmark: the embed stage against a bare open_clip loop, in one run.

    .venv/bin/python bench/embed.py                          # ViT-B-32, 512 images, batch 64
    .venv/bin/python bench/embed.py --model pixsearch-tiny --images 128   # smoke run

A moto server holds ``--images`` distinct JPEGs (web-sized, 480x360) under
their content keys. The model has random weights (the same compute as trained
ones) and ``--threads`` torch threads. Measured batch by batch, interleaved so
that load from other processes hits both sides alike:

* bare: ``encode_image`` under ``inference_mode`` on the same images, already
  fetched, decoded and preprocessed before the clock starts;
* stage: :func:`pixsearch.embed.batch.embed_events` on the batch's events, i.e.
  fetch from the bucket, decode, preprocess, encode (in chunks of
  ``--chunk``, so that preparing one chunk overlaps encoding the previous
  one), write the shard.

Reports images/s of both, their ratio (goal >= 0.9), the CPU the moto server
process spent serving the stage's reads (on AWS, S3 is not on the function's
cores; here it is on the same two) and the peak RSS of this process (goal
<= 2.5 GB at batch 64; it includes the bare side's pre-decoded tensors, moto
runs in its own process).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixsearch import layout  # noqa: E402
from pixsearch.config import Settings  # noqa: E402
from pixsearch.embed import images as decoding  # noqa: E402
from pixsearch.embed.batch import embed_events  # noqa: E402
from pixsearch.embed.model import load_model  # noqa: E402
from pixsearch.events import ObjectEvent  # noqa: E402
from pixsearch.runtime.emulator import LOCAL_CREDENTIALS, free_port, launch  # noqa: E402
from pixsearch.storage import ObjectStore, client  # noqa: E402


def web_image(number: int, rng: np.random.Generator) -> bytes:
    """A 480x360 JPEG with a gradient, noise and shapes: decodes like a photo of that size."""
    base = np.linspace(0, 255, 480, dtype=np.float32)[None, :, None]
    pixels = base * rng.uniform(0.2, 1.0, size=(1, 1, 3)) + rng.normal(0, 25, size=(360, 480, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.integers(0, 400), rng.integers(0, 300)
        draw.ellipse((x, y, x + 80, y + 60), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw.text((10, 10), f"#{number}", fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def upload(store: ObjectStore, count: int) -> list[ObjectEvent]:
    rng = np.random.default_rng(0)
    events = []
    for number in range(count):
        data = web_image(number, rng)
        key = layout.image_key(hashlib.sha256(data).hexdigest(), "jpg")
        etag = store.put(key, data, metadata={"source-url": f"http://bench/{number}.jpg"})
        events.append(
            ObjectEvent(str(number), store.bucket, key, "ObjectCreated:Put", len(data), etag)
        )
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=Settings().embed_batch_size)
    args = parser.parse_args()

    os.environ.update(LOCAL_CREDENTIALS)
    server = launch(
        "moto", port=free_port(), log_path=Path(tempfile.mkdtemp()) / "moto.log"
    ).start()
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
    try:
        settings = Settings(
            bucket="bench-embed",
            model=args.model,
            pretrained="",
            torch_threads=args.threads,
            embed_batch_size=args.chunk,
        )
        client("s3").create_bucket(Bucket=settings.bucket)
        store = ObjectStore(settings.bucket)
        started = time.perf_counter()
        events = upload(store, args.images)
        print(f"uploaded {len(events)} images in {time.perf_counter() - started:.1f}s")
        model = load_model(settings)
        pixels = [
            model.preprocess(decoding.decode(store.get(e.key), max_pixels=10**8)) for e in events
        ]
        model.encode_pixels(torch.stack(pixels[: args.batch]))  # warm-up, both sides share it

        bare_s = stage_s = moto_cpu_s = 0.0
        for start in range(0, len(events), args.batch):
            batch = torch.stack(pixels[start : start + args.batch])
            tick = time.perf_counter()
            bare = model.encode_pixels(batch)
            bare_batch_s = time.perf_counter() - tick
            tick, moto_before = time.perf_counter(), cpu_seconds(server.process.pid)
            result = embed_events(events[start : start + args.batch], store, model, settings)
            stage_batch_s = time.perf_counter() - tick
            moto_cpu_s += cpu_seconds(server.process.pid) - moto_before
            assert not result.failures and result.embedded == len(bare)
            bare_s, stage_s = bare_s + bare_batch_s, stage_s + stage_batch_s
            print(
                f"  batch {start // args.batch + 1}: bare {len(bare) / bare_batch_s:.1f}/s, "
                f"stage {len(bare) / stage_batch_s:.1f}/s"
            )
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    finally:
        server.stop()

    bare_rate, stage_rate = len(events) / bare_s, len(events) / stage_s
    shards = len(events) // args.batch + bool(len(events) % args.batch)
    print(
        f"\nmodel {args.model} (random weights), {args.threads} torch threads, "
        f"{len(events)} images 480x360 JPEG, batch {args.batch} (encoded in chunks of "
        f"{args.chunk}), {shards} shards"
    )
    print(f"bare open_clip loop : {bare_rate:6.2f} images/s")
    print(f"embed stage         : {stage_rate:6.2f} images/s")
    print(f"ratio stage / bare  : {stage_rate / bare_rate:6.3f}  (goal >= 0.9)")
    print(
        f"moto server CPU     : {moto_cpu_s / len(events) * 1000:6.1f} ms per image read "
        f"({moto_cpu_s / stage_s:.0%} of one core during the stage)"
    )
    print(f"peak RSS            : {peak_gb:6.2f} GB  (goal <= 2.5 GB)")


if __name__ == "__main__":
    main()

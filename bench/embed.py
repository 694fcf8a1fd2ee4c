"""Embed benchmark: the embed stage against a bare model loop, or the runtimes against each other.

    .venv/bin/python bench/embed.py                          # ViT-B-32, 512 images, batch 64
    .venv/bin/python bench/embed.py --model pixsearch-tiny --images 128   # smoke run
    .venv/bin/python bench/embed.py --runtimes --images 256  # ONNX variants vs eager open_clip

``--runtimes`` exports the model (random weights, fp32 + int8) once into
``--onnx-dir``, then encodes the same preprocessed batches (``--chunk`` images,
the embed stage's batch) with eager open_clip and with every onnxruntime
variant (graph optimization levels, int8), interleaved batch by batch; it
reports images/s, the ratio to eager and the lowest per-vector cosine to the
eager vectors, the p50 of one-text encodes (tokenizing included) and the cost
and exactness of the numpy preprocessing against open_clip's transform.

Without ``--runtimes``:

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
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixsearch import images as decoding  # noqa: E402
from pixsearch import layout  # noqa: E402
from pixsearch.config import Settings  # noqa: E402
from pixsearch.embed.batch import embed_events  # noqa: E402
from pixsearch.events import ObjectEvent  # noqa: E402
from pixsearch.inference import ClipModel, load_model  # noqa: E402
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


VARIANTS = (
    ("onnx fp32, optimization all", "fp32", "all"),
    ("onnx fp32, optimization extended", "fp32", "extended"),
    ("onnx fp32, optimization basic", "fp32", "basic"),
    ("onnx int8, optimization all", "int8", "all"),
    ("onnx int8, optimization basic", "int8", "basic"),
)
EAGER = "eager open_clip (torch)"


def ensure_export(model: str, onnx_dir: Path) -> Path:
    from pixsearch.inference.export import export

    started = time.perf_counter()
    settings = Settings(model=model, pretrained="", inference="torch")
    result = export(settings, str(onnx_dir), quantize="int8")
    took = "kept" if result.skipped else f"made in {time.perf_counter() - started:.0f}s"
    print(f"export of {model} in {result.destination} ({took})", flush=True)
    for name, info in result.manifest.files.items():
        print(f"  {name}: {info['bytes'] / 1e6:.1f} MB")
    return onnx_dir


def cosines(vectors: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Lowest and median cosine of each row of ``vectors`` to its row of ``reference``."""
    each = (vectors * reference).sum(axis=1)
    return float(each.min()), float(np.median(each))


def compare_runtimes(args: argparse.Namespace) -> None:
    from pixsearch.inference import exported
    from pixsearch.inference.onnx_runtime import OnnxClip
    from pixsearch.inference.torch_runtime import create_model

    ensure_export(args.model, args.onnx_dir)
    settings = Settings(
        model=args.model, pretrained="", torch_threads=args.threads, onnx_dir=str(args.onnx_dir)
    )
    eager = create_model(settings.model_copy(update={"inference": "torch"}))
    export = exported.find(settings)
    assert export is not None
    default, reason = exported.choose_precision(export.manifest.graphs, export.manifest.quality)
    print(f"PIXSEARCH_ONNX_PRECISION=auto picks {default}: {reason}")
    sides: dict[str, ClipModel] = {EAGER: eager}
    for label, precision, level in VARIANTS:
        shipped = " (shipped default)" if (precision, level) == (default, "all") else ""
        sides[label + shipped] = OnnxClip(
            export, threads=args.threads, precision=precision, optimization=level
        )
    onnx_default = next(side for label, side in sides.items() if "default" in label)
    onnx_fp32 = sides[VARIANTS[0][0] + " (shipped default)" * (default == "fp32")]
    rng = np.random.default_rng(0)
    photos = [
        decoding.decode(web_image(n, rng), max_pixels=10**8).image for n in range(args.images)
    ]
    torch_pre, numpy_pre, worst = [], [], 0.0
    for photo in photos:
        tick = time.perf_counter()
        theirs = eager.preprocess(photo)
        torch_pre.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        ours = onnx_default.preprocess(photo)
        numpy_pre.append(time.perf_counter() - tick)
        worst = max(worst, float(np.abs(ours - theirs).max()))
    pixels = np.stack([eager.preprocess(photo) for photo in photos])
    batches = [pixels[i : i + args.chunk] for i in range(0, len(pixels), args.chunk)]
    for model in sides.values():
        model.encode_pixels(batches[0])  # warm-up
    seconds = dict.fromkeys(sides, 0.0)
    vectors: dict[str, list[np.ndarray]] = {label: [] for label in sides}
    for number, batch in enumerate(batches):
        for label, model in sides.items():
            tick = time.perf_counter()
            vectors[label].append(model.encode_pixels(batch))
            seconds[label] += time.perf_counter() - tick
        print(f"  batch {number + 1}/{len(batches)} done", flush=True)
    reference = np.concatenate(vectors[EAGER])
    eager_rate = len(pixels) / seconds[EAGER]
    texts = [f"a photo of thing number {n} on a table" for n in range(args.texts)]
    text_sides = {"eager": eager, "onnx fp32": onnx_fp32, f"onnx {default} (default)": onnx_default}
    for text in texts[:3]:
        for side in text_sides.values():
            side.encode_texts([text])
    text_s: dict[str, list[float]] = {label: [] for label in text_sides}
    text_vectors: dict[str, list[np.ndarray]] = {label: [] for label in text_sides}
    for text in texts:
        for label, side in text_sides.items():
            tick = time.perf_counter()
            text_vectors[label].append(side.encode_texts([text])[0])
            text_s[label].append(time.perf_counter() - tick)

    print(
        f"\nmodel {args.model} (random weights), {args.threads} threads, {len(pixels)} images "
        f"480x360 JPEG, batches of {args.chunk}, interleaved batch by batch"
    )
    print(f"{'side':56} {'images/s':>9} {'vs eager':>9} {'cosine min / median':>20}")
    for label in sides:
        rate = len(pixels) / seconds[label]
        minimum, median = cosines(np.concatenate(vectors[label]), reference)
        print(f"{label:56} {rate:9.2f} {rate / eager_rate:8.2f}x {minimum:11.5f} / {median:.5f}")
    print(f"\ntext encode p50 (one text, tokenizing included, {len(texts)} texts):")
    eager_p50 = statistics.median(text_s["eager"]) * 1000
    eager_texts = np.stack(text_vectors["eager"])
    for label in text_sides:
        p50 = statistics.median(text_s[label]) * 1000
        minimum, median = cosines(np.stack(text_vectors[label]), eager_texts)
        print(
            f"  {label:24} {p50:7.1f} ms ({eager_p50 / p50:.2f}x eager), "
            f"cosine min {minimum:.5f} / median {median:.5f}"
        )
    torch_ms, numpy_ms = statistics.median(torch_pre) * 1000, statistics.median(numpy_pre) * 1000
    print(
        f"preprocessing per image (p50): open_clip transform {torch_ms:.2f} ms, numpy "
        f"{numpy_ms:.2f} ms; max abs difference {worst:.2e}"
    )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=Settings().embed_batch_size)
    parser.add_argument("--runtimes", action="store_true", help="compare eager and ONNX variants")
    parser.add_argument("--texts", type=int, default=60, help="texts for the text encode p50")
    parser.add_argument(
        "--onnx-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "pixsearch-bench-onnx",
        help="where the benchmark's export is made once and kept",
    )
    parser.add_argument(
        "--inference",
        default="torch",
        choices=["torch", "onnx"],
        help="runtime of the stage comparison (both sides use it)",
    )
    args = parser.parse_args()
    if args.runtimes:
        compare_runtimes(args)
        return
    if args.inference == "onnx":
        ensure_export(args.model, args.onnx_dir)

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
            inference=args.inference,
            onnx_dir=str(args.onnx_dir),
        )
        client("s3").create_bucket(Bucket=settings.bucket)
        store = ObjectStore(settings.bucket)
        started = time.perf_counter()
        events = upload(store, args.images)
        print(f"uploaded {len(events)} images in {time.perf_counter() - started:.1f}s")
        model = load_model(settings)
        pixels = [
            model.preprocess(
                decoding.decode(
                    store.get(e.key), max_pixels=10**8, resized_to=model.input_size
                ).image
            )
            for e in events
        ]
        model.encode_pixels(np.stack(pixels[: args.batch]))  # warm-up, both sides share it

        bare_s = stage_s = moto_cpu_s = 0.0
        for start in range(0, len(events), args.batch):
            batch = np.stack(pixels[start : start + args.batch])
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
        f"\nmodel {args.model} (random weights), on {args.inference}, {args.threads} threads, "
        f"{len(events)} images 480x360 JPEG, batch {args.batch} (encoded in chunks of "
        f"{args.chunk}), {shards} shards"
    )
    print(f"bare model loop     : {bare_rate:6.2f} images/s")
    print(f"embed stage         : {stage_rate:6.2f} images/s")
    print(f"ratio stage / bare  : {stage_rate / bare_rate:6.3f}  (goal >= 0.9)")
    print(
        f"moto server CPU     : {moto_cpu_s / len(events) * 1000:6.1f} ms per image read "
        f"({moto_cpu_s / stage_s:.0%} of one core during the stage)"
    )
    print(f"peak RSS            : {peak_gb:6.2f} GB  (goal <= 2.5 GB)")


if __name__ == "__main__":
    main()

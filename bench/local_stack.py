"""The local stack's backends side by side: end to end ingest, restart, memory.

    python bench/local_stack.py [--images 2000,10000] [--backends ministack,moto]
        [--costs 300] [--vit 300] [--restart 10000,100000] [--skip-ingest] [--skip-memory]
        [--puts 3000]

For each backend of ``pixsearch.runtime.emulator`` in one run:

1. ingest: ``pixsearch up`` (tiny model, no API, no web app) and ``pixsearch
   ingest`` of N images from a loopback nginx (bench/loopback.py), for each N of
   ``--images``; images/s for the download (the list summary's own duration) and
   end to end (upload to all searchable), CPU ms per image of the emulator and of
   the stage runner, and their peak RSS.
2. costs (``--costs N``): CPU ms per image of each piece of per-image work done
   alone in one thread (validation, decode + preprocess before and after the
   reduced JPEG decode, a boto3 put and get on each side of MiniStack): what the
   stage runner's and the emulator's CPU per image is made of.
3. ViT-B-32 (random weights, ``--vit`` images, default backend): the same ingest
   end to end against the bare embed loop in this process (read the JPEG, decode
   and preprocess as the embed stage does, encode in chunks of the embed batch
   size, the same torch threads), the bare loop run first so neither pays the
   other's model load.
4. restart: a data directory holding N objects, then the time from starting
   the emulator to the last object being readable, and its RSS: first over the
   files alone (MiniStack's own full scan), then again after a clean stop (the
   snapshot of pixsearch/runtime/ministack_fixes.py). Objects are written
   straight into MiniStack's on-disk layout (a body file plus its
   ``.meta.json``, as MiniStack writes them) to reach 100,000 in seconds; moto
   keeps nothing across restarts, so it has no row.
5. memory vs bytes stored: RSS after storing 200 objects of 1 KB, then 200 of 1 MB.
6. with ``--puts N``: N puts of 50 KB into a MiniStack bucket notifying a queue
   that nobody drains (puts/s, emulator CPU per put), then a SIGKILL of the
   emulator and a start over the same directory: how long until it answers and
   how many of the N messages are still queued.

Prints JSON (with the load averages before and after) and keeps it in bench/.work/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import boto3  # noqa: E402
from loopback import Nginx, make_images, size_stats, write_url_list  # noqa: E402

from pixsearch.runtime.emulator import (  # noqa: E402
    BACKENDS,
    LOCAL_CREDENTIALS,
    EmulatorProcess,
    free_port,
    launch,
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def copy_lines(source: IO[str], path: Path) -> None:
    with path.open("w") as sink:
        for line in source:
            sink.write(line)


def boto(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def ingest(
    backend: str, count: int, nginx_port: int, work: Path, model: str = "pixsearch-tiny"
) -> dict[str, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIXSEARCH_"))}
    env.update(
        LOCAL_CREDENTIALS,
        PYTHONPATH=str(ROOT),
        PIXSEARCH_LOCAL_BACKEND=backend,
        PIXSEARCH_MOTO_PORT=str(port),
        PIXSEARCH_DATA_DIR=str(work / f"data-{backend}-{model}-{count}"),
        PIXSEARCH_MODEL=model,
        PIXSEARCH_INFERENCE="torch",
        PIXSEARCH_PRETRAINED="",
        PIXSEARCH_DOWNLOAD_ALLOW=f"127.0.0.1:{nginx_port}",
    )
    stack = subprocess.Popen(
        [sys.executable, "-m", "pixsearch.cli", "up", "--no-api", "--no-webapp"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert stack.stdout is not None
        awaited = {"Press Ctrl-C", "embed model"}  # up, and the model loaded (not timed)
        for line in stack.stdout:
            awaited = {text for text in awaited if text not in line}
            if not awaited:
                break
        else:
            raise RuntimeError(f"{backend}: pixsearch up did not come up")
        # Keep reading its log: a full pipe would stop the stage runner at its next line.
        log_path = work / f"stack-{backend}-{model}-{count}.log"
        threading.Thread(target=copy_lines, args=(stack.stdout, log_path), daemon=True).start()
        (emulator_pid,) = children(stack.pid)
        before = {"emulator": cpu_s(emulator_pid), "stages": cpu_s(stack.pid)}
        urls = write_url_list(nginx_port, count)
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pixsearch.cli", "ingest", str(urls), "--timeout", "1200"],
            env=env,
            capture_output=True,
            text=True,
        )
        searchable_s = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"{backend}: ingest failed: {result.stderr[-2000:]}")
        after = {"emulator": cpu_s(emulator_pid), "stages": cpu_s(stack.pid)}
        download_s = float(result.stdout.split("took ")[1].split("s")[0])
        status = json.loads(
            subprocess.run(
                [sys.executable, "-m", "pixsearch.cli", "status", "--json"],
                env=env,
                capture_output=True,
                text=True,
            ).stdout
        )
        searchable = int(result.stderr.rsplit(" images searchable", 1)[0].split()[-1])
        return {
            "images": count,
            "searchable": searchable,
            "dead_letters": sum(s["dead_letters"] for s in status["stages"].values()),
            "download_images_per_s": round(count / download_s, 1),
            "end_to_end_images_per_s": round(count / searchable_s, 1),
            "end_to_end_s": round(searchable_s, 1),
            "emulator_cpu_ms_per_image": round(
                1000 * (after["emulator"] - before["emulator"]) / count, 1
            ),
            "stages_cpu_ms_per_image": round(
                1000 * (after["stages"] - before["stages"]) / count, 1
            ),
            "emulator_peak_rss_mb": round(rss_mb(emulator_pid, "VmHWM"), 1),
            "stages_peak_rss_mb": round(rss_mb(stack.pid, "VmHWM"), 1),
        }
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(timeout=120)


def bare_embed_loop(folder: Path, count: int, model_name: str) -> dict[str, float]:
    """The embed stage's own work on ``count`` images, in this process, nothing else running."""
    import numpy as np

    from pixsearch import images
    from pixsearch.config import Settings
    from pixsearch.inference import load_model

    settings = Settings(model=model_name, pretrained="", inference="torch")
    model = load_model(settings)
    paths = [folder / f"{n}.jpg" for n in range(count)]
    started = time.monotonic()
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
    bare_s = time.monotonic() - started
    return {"images": count, "bare_s": round(bare_s, 1), "images_per_s": round(count / bare_s, 1)}


def vit_comparison(folder: Path, count: int, nginx_port: int, work: Path) -> dict[str, object]:
    bare = bare_embed_loop(folder, count, "ViT-B-32")
    stack = ingest(BACKENDS[0], count, nginx_port, work, model="ViT-B-32")
    return {
        "bare_embed_loop": bare,
        "end_to_end": stack,
        "end_to_end_over_bare": round(stack["end_to_end_images_per_s"] / bare["images_per_s"], 3),
    }


def per_image_costs(folder: Path, count: int, work: Path) -> dict[str, float]:
    """CPU ms per image of each piece of per-image work, one thread, nothing overlapped:
    what the stages' CPU is made of (the emulator's side measured from /proc)."""
    from pixsearch import images
    from pixsearch.config import Settings
    from pixsearch.inference import load_model

    datas = [(folder / f"{n}.jpg").read_bytes() for n in range(count)]
    model = load_model(Settings(model="pixsearch-tiny", pretrained="", inference="torch"))
    limit = Settings().download_max_pixels

    def ms(work_on_one) -> float:
        started = time.process_time()
        for number, data in enumerate(datas):
            work_on_one(number, data)
        return round(1000 * (time.process_time() - started) / count, 2)

    costs = {
        "validate (download stage, default decode check)": ms(
            lambda _, d: images.validate(d, max_pixels=limit)
        ),
        "full decode + preprocess (embed stage before)": ms(
            lambda _, d: model.preprocess(images.decode(d, max_pixels=limit).image)
        ),
        "reduced decode + preprocess (embed stage now)": ms(
            lambda _, d: model.preprocess(
                images.decode(d, max_pixels=limit, resized_to=model.input_size).image
            )
        ),
    }
    emulator = launch(
        "ministack", port=free_port(), data_dir=work / "costs", log_path=work / "costs.log"
    ).start()
    try:
        assert emulator.process is not None
        s3 = boto("s3", emulator.endpoint_url)
        s3.create_bucket(Bucket="costs-bench")
        calls = {
            "put_object": lambda n, d: s3.put_object(
                Bucket="costs-bench", Key=f"{n}.jpg", Body=d, IfNoneMatch="*"
            ),
            "get_object": lambda n, _: s3.get_object(Bucket="costs-bench", Key=f"{n}.jpg")[
                "Body"
            ].read(),
        }
        for name, call in calls.items():
            before = cpu_s(emulator.process.pid)
            costs[f"boto3 {name}, client side"] = ms(call)
            emulator_ms = 1000 * (cpu_s(emulator.process.pid) - before) / count
            costs[f"boto3 {name}, MiniStack side (no notifications)"] = round(emulator_ms, 2)
    finally:
        emulator.stop()
    return costs


def fill_ministack_dir(data_dir: Path, bucket: str, count: int) -> None:
    """``count`` small objects in MiniStack's on-disk layout (a body file + its sidecar)."""
    root = data_dir / "s3" / "000000000000" / bucket / "images"
    for n in range(count):
        body = f"object {n}".encode().ljust(1024, b".")
        digest = hashlib.sha256(str(n).encode()).hexdigest()
        folder = root / digest[:2]
        folder.mkdir(parents=True, exist_ok=True)
        key = f"images/{digest[:2]}/{digest}.jpg"
        (folder / f"{digest}.jpg").write_bytes(body)
        meta = {
            "content_type": "image/jpeg",
            "etag": f'"{hashlib.md5(body).hexdigest()}"',  # noqa: S324 - S3's ETag is MD5
            "last_modified": "2026-01-01T00:00:00.000Z",
            "size": len(body),
            "metadata": {},
            "key": key,
        }
        (folder / f"{digest}.jpg.meta.json").write_text(json.dumps(meta))


def restart(count: int, work: Path) -> dict[str, float]:
    """Start over ``count`` objects twice: files only (MiniStack's full scan), then after a
    clean stop (pixsearch's metadata snapshot, pixsearch/runtime/ministack_fixes.py)."""
    data_dir = work / f"restart-{count}"
    bucket = "restart-bench"
    fill_ministack_dir(data_dir, bucket, count)
    last = hashlib.sha256(str(count - 1).encode()).hexdigest()
    figures: dict[str, float] = {"objects": count}
    for label in ("first_start_full_scan", "restart_after_clean_stop"):
        emulator = launch("ministack", port=free_port(), data_dir=data_dir, log_path=work / "r.log")
        started = time.monotonic()
        emulator.start()
        try:
            s3 = boto("s3", emulator.endpoint_url)
            s3.head_object(Bucket=bucket, Key=f"images/{last[:2]}/{last}.jpg")
            figures[f"{label}_ready_s"] = round(time.monotonic() - started, 2)
            assert emulator.process is not None
            figures[f"{label}_rss_mb"] = round(rss_mb(emulator.process.pid), 1)
        finally:
            emulator.stop()
    return figures


def notified_puts(count: int, work: Path) -> dict[str, float]:
    """Puts with S3 -> SQS notifications, then a crash (SIGKILL) and a restart."""
    data_dir, port = work / f"puts-{count}", free_port()

    def start() -> EmulatorProcess:
        return launch("ministack", port=port, data_dir=data_dir, log_path=work / "p.log").start()

    emulator = start()
    assert emulator.process is not None
    s3, sqs = boto("s3", emulator.endpoint_url), boto("sqs", emulator.endpoint_url)
    queue = sqs.create_queue(QueueName="puts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    s3.create_bucket(Bucket="puts-bench")
    s3.put_bucket_notification_configuration(
        Bucket="puts-bench",
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn["QueueArn"], "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    sqs.purge_queue(QueueUrl=queue)  # the s3:TestEvent
    body = os.urandom(50 * 1024)
    cpu_before, started = cpu_s(emulator.process.pid), time.monotonic()
    for n in range(count):
        s3.put_object(Bucket="puts-bench", Key=f"images/{n:06d}.jpg", Body=body)
    elapsed = time.monotonic() - started
    figures: dict[str, float] = {
        "puts": count,
        "puts_per_s": round(count / elapsed, 1),
        "emulator_cpu_ms_per_put": round(
            1000 * (cpu_s(emulator.process.pid) - cpu_before) / count, 2
        ),
    }
    emulator.process.send_signal(signal.SIGKILL)
    emulator.process.wait()
    started = time.monotonic()
    emulator = start()
    try:
        figures["restart_after_kill_s"] = round(time.monotonic() - started, 2)
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        figures["messages_after_kill"] = int(attributes["ApproximateNumberOfMessages"])
    except Exception as error:  # noqa: BLE001 - a lost queue is a result, not a crash
        figures["messages_after_kill"] = 0
        figures["error_after_kill"] = str(error)[:120]
    finally:
        emulator.stop()
    return figures


def memory_vs_bytes(backend: str, work: Path) -> dict[str, float]:
    emulator: EmulatorProcess = launch(
        backend,
        port=free_port(),
        data_dir=work / f"bytes-{backend}" if backend == "ministack" else None,
        log_path=work / f"bytes-{backend}.log",
    ).start()
    try:
        assert emulator.process is not None
        s3 = boto("s3", emulator.endpoint_url)
        s3.create_bucket(Bucket="bytes-bench")
        figures = {"start_rss_mb": round(rss_mb(emulator.process.pid), 1)}
        for label, size in (("1kb", 1024), ("1mb", 1024 * 1024)):
            for n in range(200):
                s3.put_object(Bucket="bytes-bench", Key=f"{label}/{n}", Body=os.urandom(size))
            figures[f"rss_after_200x{label}_mb"] = round(rss_mb(emulator.process.pid), 1)
        return figures
    finally:
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="2000", help="comma-separated list sizes")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--vit", type=int, default=0, help="images for the ViT-B-32 comparison")
    parser.add_argument("--costs", type=int, default=0, help="images for the per-image costs")
    parser.add_argument("--restart", default="10000,100000")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--puts", type=int, default=0, help="puts with notifications, then a crash")
    args = parser.parse_args()
    sizes = [int(n) for n in args.images.split(",") if n]
    backends = [b for b in args.backends.split(",") if b]
    work = Path(tempfile.mkdtemp(prefix="pixsearch-local-stack-"))
    (ROOT / "bench" / ".work").mkdir(exist_ok=True)
    out = ROOT / "bench" / ".work" / f"local_stack-{int(time.time())}.json"
    results: dict[str, object] = {"work": str(work), "load_before": os.getloadavg()}

    def keep(name: str, value: object) -> None:
        """Record a figure as soon as it exists (a long run stopped early keeps what it has)."""
        results[name] = value
        out.write_text(json.dumps(results, indent=2))
        print(json.dumps({name: value}, indent=2), flush=True)

    if not args.skip_ingest or args.vit or args.costs:
        folder = make_images(max([*sizes, args.vit, args.costs]))
        keep("image_sizes", size_stats(folder))
        if args.costs:
            keep("cpu_ms_per_image", per_image_costs(folder, args.costs, work))
        with Nginx(folder) as nginx:
            for count in sizes if not args.skip_ingest else []:
                for backend in backends:
                    keep(f"ingest {backend} {count}", ingest(backend, count, nginx.port, work))
                if count == sizes[0] and args.vit:
                    keep("vit_b_32", vit_comparison(folder, args.vit, nginx.port, work))
            if args.skip_ingest and args.vit:
                keep("vit_b_32", vit_comparison(folder, args.vit, nginx.port, work))
    if args.restart:
        keep("restart", [restart(int(n), work) for n in args.restart.split(",") if n])
    if args.puts:
        keep("notified_puts", notified_puts(args.puts, work))
    if not args.skip_memory:
        keep("memory_vs_bytes", {b: memory_vs_bytes(b, work) for b in backends})
    keep("load_after", os.getloadavg())


if __name__ == "__main__":
    main()

"""The local stack's backends side by side: end to end ingest, restart, memory.

    python bench/local_stack.py [--images 2000,10000] [--backends ministack,moto]
        [--costs 300] [--vit 300] [--vit-runtimes onnx,torch] [--restart 10000,100000]
        [--skip-ingest] [--skip-memory] [--stack-env KEY=VALUE,...]
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
3. ViT-B-32 (random weights, ``--vit`` images, default backend, on each runtime of
   ``--vit-runtimes``: onnx, what `make up` runs after its `pixsearch model
   export`, and torch): the same ingest end to end against the bare embed loop
   in this process on the same runtime and threads (read the JPEG, decode and
   preprocess as the embed stage does, encode in chunks of the embed batch
   size), run just before and just after the ingest so that a change in the
   machine's load shows; neither side pays the model load. The stack's log
   gives the timeline: when the first embed batch started, how long embed
   batches ran (and two at once), when the last one and the last index run
   ended, against the moment everything was searchable.
4. restart: a data directory holding N objects, then the time from starting
   the emulator to the last object being readable, and its RSS: first over the
   files alone (MiniStack's own full scan), then again after a clean stop (the
   snapshot of pixsearch/runtime/ministack_object_journal.py), then after a
   SIGKILL that follows 1,000 puts and 100 deletes over HTTP (snapshot + the
   journal that run left), and after a SIGKILL with that journal repeated up to
   its compaction bound. The N objects are written straight into MiniStack's
   on-disk layout (a body file plus its ``.meta.json``, as MiniStack writes
   them) to reach 100,000 in seconds; moto keeps nothing across restarts, so it
   has no row.
5. memory vs bytes stored: RSS after storing 200 objects of 1 KB, then 200 of 1 MB.
6. with ``--puts N``: N puts of 50 KB into a MiniStack bucket notifying a queue
   that nobody drains (puts/s, emulator CPU per put), then a SIGKILL of the
   emulator and a start over the same directory: how long until it answers and
   how many of the N messages are still queued.

Prints JSON (with the load averages before and after) and keeps it in bench/.work/.
"""

from __future__ import annotations

import argparse
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

from bare_embed import bare_embed_loop, export_vit  # noqa: E402
from emulator_alone import boto, cpu_s, memory_vs_bytes, notified_puts, restart, rss_mb  # noqa: E402
from loopback import Nginx, make_images, size_stats, write_url_list  # noqa: E402
from stage_timeline import stage_timeline  # noqa: E402

from pixsearch.runtime.emulator import (  # noqa: E402
    BACKENDS,
    LOCAL_CREDENTIALS,
    free_port,
    launch,
)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def copy_lines(source: IO[str], path: Path) -> None:
    with path.open("w", buffering=1) as sink:  # line by line: read while it runs
        for line in source:
            sink.write(line)


def ingest(
    backend: str,
    count: int,
    nginx_port: int,
    work: Path,
    model: str = "pixsearch-tiny",
    inference: str = "torch",
    onnx_dir: Path | None = None,
    stack_env: dict[str, str] | None = None,
) -> dict[str, object]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIXSEARCH_"))}
    env.update(
        LOCAL_CREDENTIALS,
        PYTHONPATH=str(ROOT),
        PIXSEARCH_LOCAL_BACKEND=backend,
        PIXSEARCH_MOTO_PORT=str(port),
        PIXSEARCH_DATA_DIR=str(work / f"data-{backend}-{model}-{inference}-{count}"),
        PIXSEARCH_MODEL=model,
        PIXSEARCH_INFERENCE=inference,
        PIXSEARCH_ONNX_DIR=str(onnx_dir or ""),
        PIXSEARCH_PRETRAINED="",
        PIXSEARCH_DOWNLOAD_ALLOW=f"127.0.0.1:{nginx_port}",
        **(stack_env or {}),
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
        log_path = work / f"stack-{backend}-{model}-{inference}-{count}.log"
        threading.Thread(target=copy_lines, args=(stack.stdout, log_path), daemon=True).start()
        (emulator_pid,) = children(stack.pid)
        before = {"emulator": cpu_s(emulator_pid), "stages": cpu_s(stack.pid)}
        urls = write_url_list(nginx_port, count)
        started, started_at = time.monotonic(), time.time()
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
            "timeline_s": stage_timeline(log_path, started_at, searchable_s),
        }
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(timeout=120)


def vit_comparison(
    folder: Path,
    count: int,
    nginx_port: int,
    work: Path,
    inference: str,
    stack_env: dict[str, str] | None = None,
) -> dict[str, object]:
    onnx_dir = export_vit() if inference == "onnx" else None
    before = bare_embed_loop(folder, count, "ViT-B-32", inference, onnx_dir)
    stack = ingest(
        BACKENDS[0],
        count,
        nginx_port,
        work,
        "ViT-B-32",
        inference=inference,
        onnx_dir=onnx_dir,
        stack_env=stack_env,
    )
    after = bare_embed_loop(folder, count, "ViT-B-32", inference, onnx_dir)
    bare_per_s = (before["images_per_s"] + after["images_per_s"]) / 2
    return {
        "bare_embed_loop_before": before,
        "end_to_end": stack,
        "bare_embed_loop_after": after,
        "end_to_end_over_bare": round(stack["end_to_end_images_per_s"] / bare_per_s, 3),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="2000", help="comma-separated list sizes")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--vit", type=int, default=0, help="images for the ViT-B-32 comparison")
    parser.add_argument("--vit-runtimes", default="onnx,torch", help="comma-separated")
    parser.add_argument("--costs", type=int, default=0, help="images for the per-image costs")
    parser.add_argument("--restart", default="10000,100000")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--puts", type=int, default=0, help="puts with notifications, then a crash")
    parser.add_argument(
        "--stack-env",
        default="",
        help="KEY=VALUE,... for every stack the ingest runs start (e.g. an A/B of a setting)",
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.images.split(",") if n]
    backends = [b for b in args.backends.split(",") if b]
    stack_env = dict(pair.split("=", 1) for pair in args.stack_env.split(",") if pair)
    work = Path(tempfile.mkdtemp(prefix="pixsearch-local-stack-"))
    (ROOT / "bench" / ".work").mkdir(exist_ok=True)
    out = ROOT / "bench" / ".work" / f"local_stack-{int(time.time())}.json"
    results: dict[str, object] = {
        "work": str(work),
        "stack_env": stack_env,
        "load_before": os.getloadavg(),
    }

    def keep(name: str, value: object) -> None:
        """Record a figure as soon as it exists (a long run stopped early keeps what it has)."""
        results[name] = value
        out.write_text(json.dumps(results, indent=2))
        print(json.dumps({name: value}, indent=2), flush=True)

    def vit(nginx_port: int) -> None:
        for runtime in [r for r in args.vit_runtimes.split(",") if r] if args.vit else []:
            comparison = vit_comparison(folder, args.vit, nginx_port, work, runtime, stack_env)
            keep(f"vit_b_32 {runtime}", comparison)

    if not args.skip_ingest or args.vit or args.costs:
        folder = make_images(max([*sizes, args.vit, args.costs]))
        keep("image_sizes", size_stats(folder))
        if args.costs:
            keep("cpu_ms_per_image", per_image_costs(folder, args.costs, work))
        with Nginx(folder) as nginx:
            for count in sizes if not args.skip_ingest else []:
                for backend in backends:
                    result = ingest(backend, count, nginx.port, work, stack_env=stack_env)
                    keep(f"ingest {backend} {count}", result)
                if count == sizes[0]:
                    vit(nginx.port)
            if args.skip_ingest:
                vit(nginx.port)
    if args.restart:
        keep("restart", [restart(int(n), work) for n in args.restart.split(",") if n])
    if args.puts:
        keep("notified_puts", notified_puts(args.puts, work))
    if not args.skip_memory:
        keep("memory_vs_bytes", {b: memory_vs_bytes(b, work) for b in backends})
    keep("load_after", os.getloadavg())


if __name__ == "__main__":
    main()

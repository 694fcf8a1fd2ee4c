"""Download benchmark: pixsearch's downloader against img2dataset, on the same list and server.

Not a test. Serves N JPEGs (30-300 KB, mean about 100 KB) from nginx on a loopback
port and, in one run:

1. the downloaders alone, each run as separate processes timed from outside
   (start-up included), on the same URL list, server, connections and number of
   processes, in two pairs doing comparable work:
   - pixsearch decoding every image to check it (its default) vs img2dataset 1.47
     decoding every image with OpenCV (``--resize_mode no --skip_reencode``);
   - pixsearch checking headers and end markers only (``download_decode=False``)
     vs img2dataset checking nothing (``--disable_all_reencoding``).
   Both sides fetch and sha256 every image; pixsearch also applies its SSRF
   checks; pixsearch hands results to a null sink, img2dataset to its ``dummy``
   writer;
2. end to end into moto server: the downloader writing every image to a bucket
   (``put_if_absent`` with the source URL as metadata), next to moto's own ceiling
   for the same puts on another bucket, measured in the same run. S3->SQS
   notifications are off unless ``--notifications``: nothing drains the queue
   here, and moto's puts slow down as an undrained queue grows.

    apt-get install -y nginx
    .venv/bin/python bench/download.py            # N=10000, 64 connections, 2 processes
    .venv/bin/python bench/download.py --count 2000 --e2e-count 500

img2dataset is installed into its own virtual environment under bench/.work/
(its pins clash with pixsearch's); generated images and nginx files live there too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from loopback import ROOT, WORK, Nginx, make_images, size_stats, write_url_list

IMG2DATASET = "img2dataset==1.47.0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="images served (default 10000)")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent connections")
    parser.add_argument(
        "--processes", type=int, default=2, help="processes on each side (default 2, one a core)"
    )
    parser.add_argument("--e2e-count", type=int, default=2000, help="images written to moto")
    parser.add_argument("--skip-e2e", action="store_true", help="only the downloaders alone")
    parser.add_argument("--only-e2e", action="store_true", help="only the runs into moto")
    parser.add_argument(
        "--notifications",
        action="store_true",
        help="keep S3->SQS notifications on for the moto runs (nothing drains the queue)",
    )
    parser.add_argument("--side", choices=["pixsearch"], help=argparse.SUPPRESS)
    parser.add_argument("--urls", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-decode", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "pixsearch":
        print(json.dumps(run_pixsearch_side(args.urls, args.concurrency, not args.no_decode)))
        return
    sys.path.insert(0, str(ROOT))
    images = make_images(args.count)
    results: dict[str, Any] = {
        "count": args.count,
        "concurrency": args.concurrency,
        "processes": args.processes,
        "sizes": size_stats(images),
    }
    sizes = results["sizes"]
    print(
        f"{args.count} JPEGs, mean {sizes['mean_kb']} KB ({sizes['min_kb']}-{sizes['max_kb']} KB),"
        f" nginx on loopback, {args.concurrency} connections over {args.processes} processes"
    )
    with Nginx(images) as server:
        urls = write_url_list(server.port, args.count)
        for pixsearch_mode, img2dataset_mode in () if args.only_e2e else PAIRS:
            label = f"pixsearch {pixsearch_mode}"
            results[label] = timed_pixsearch(
                urls, args.concurrency, args.processes, decode=pixsearch_mode == "decode"
            )
            show(label, results[label])
            drain_time_wait()
            other = f"img2dataset {img2dataset_mode}"
            results[other] = timed_img2dataset(
                urls, args.concurrency, args.processes, img2dataset_mode
            )
            show(other, results[other])
            ratio = results[label]["images_per_s"] / results[other]["images_per_s"]
            results[f"ratio {pixsearch_mode}"] = round(ratio, 2)
            print(f"ratio {label} / {other}: {ratio:.2f}x")
            drain_time_wait()
        if not args.skip_e2e:
            results["e2e"] = end_to_end(
                server.port, args.e2e_count, args.concurrency, images, args.notifications
            )
            e = results["e2e"]
            print(
                f"into moto ({'with' if args.notifications else 'without'} notifications): "
                f"{e['images_per_s']} images/s ({e['ok']} ok, {e['seconds']} s); moto's own "
                f"ceiling for the same puts: {e['moto_put_ceiling_per_s']} objects/s"
            )
    (WORK / "results.json").write_text(json.dumps(results, indent=2))


def show(label: str, result: dict[str, Any]) -> None:
    print(
        f"{label:<30} {result['images_per_s']:>8.1f} images/s  ({result['ok']} ok, "
        f"{result['failed']} failed, {result['wall_s']} s wall)"
    )


# --- level 1: the downloaders alone ---------------------------------------------------------


def run_pixsearch_side(urls: Path, concurrency: int, decode: bool) -> dict[str, float]:
    """Inside the timed child process: download the list into a null sink."""
    sys.path.insert(0, str(ROOT))
    from pixsearch.config import Settings
    from pixsearch.download.downloader import Downloader
    from pixsearch.download.sink import NullSink
    from pixsearch.download.urllist import UrlEntry

    lines = urls.read_text().split()
    port = lines[0].split("/")[2].split(":")[1]
    settings = Settings(
        download_allow=f"127.0.0.1:{port}",
        download_concurrency=concurrency,
        download_per_host_concurrency=concurrency,
        download_retries=0,
        download_decode=decode,
    )
    entries = [UrlEntry(n, url) for n, url in enumerate(lines, start=1)]
    started = time.perf_counter()
    rows = Downloader(settings, NullSink()).run(entries)
    seconds = time.perf_counter() - started
    ok = sum(row.status == "ok" for row in rows)
    return {"ok": ok, "failed": len(rows) - ok, "inner_s": round(seconds, 2)}


def timed_pixsearch(
    urls: Path, concurrency: int, processes: int, *, decode: bool
) -> dict[str, Any]:
    """``processes`` children, each downloading a contiguous slice, as list parts would be."""
    lines = urls.read_text().split()
    step = -(-len(lines) // processes)
    commands = []
    for n in range(processes):
        part = WORK / f"urls-part-{n}.txt"
        part.write_text("\n".join(lines[n * step : (n + 1) * step]) + "\n")
        commands.append(
            [sys.executable, __file__, "--side", "pixsearch", "--urls", str(part)]
            + ["--concurrency", str(concurrency // processes)]
            + ([] if decode else ["--no-decode"])
        )
    started = time.perf_counter()
    children = [subprocess.Popen(c, stdout=subprocess.PIPE, text=True) for c in commands]
    outputs = [child.communicate()[0] for child in children]
    wall = time.perf_counter() - started
    if any(child.returncode for child in children):
        raise RuntimeError("a pixsearch child failed")
    parts = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    ok = sum(p["ok"] for p in parts)
    return {
        "ok": ok,
        "failed": sum(p["failed"] for p in parts),
        "wall_s": round(wall, 2),
        "images_per_s": round(ok / wall, 1),
        "inner_s": [p["inner_s"] for p in parts],
    }


def img2dataset_binary() -> Path:
    venv = WORK / "img2dataset-venv"
    binary = venv / "bin" / "img2dataset"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", IMG2DATASET], check=True)
    return binary


PAIRS = (("decode", "decoding"), ("header-only", "no-decode"))
"""pixsearch's check mode and the img2dataset mode doing comparable work."""

IMG2DATASET_MODES = {
    "no-decode": ["--disable_all_reencoding=True"],
    "decoding": ["--skip_reencode=True"],
}
"""``no-decode`` fetches and hashes (no image check at all); ``decoding`` also decodes every
image with OpenCV and keeps the original bytes, the nearest to pixsearch's validation."""


def timed_img2dataset(urls: Path, concurrency: int, processes: int, mode: str) -> dict[str, Any]:
    binary = img2dataset_binary()
    output = WORK / f"img2dataset-out-{uuid.uuid4().hex[:6]}"
    count = len(urls.read_text().split())
    command = [
        str(binary),
        f"--url_list={urls}",
        "--input_format=txt",
        f"--output_folder={output}",
        "--output_format=dummy",
        *IMG2DATASET_MODES[mode],
        "--resize_mode=no",
        f"--processes_count={processes}",
        f"--thread_count={concurrency // processes}",
        f"--number_sample_per_shard={max(1, count // (processes * 4))}",
        "--retries=0",
        "--timeout=20",
        "--enable_wandb=False",
        "--compute_hash=sha256",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
    stats = [json.loads(p.read_text()) for p in output.glob("*_stats.json")]
    ok = sum(s.get("successes", 0) for s in stats)
    shutil.rmtree(output, ignore_errors=True)
    return {
        "ok": ok,
        "failed": count - ok,
        "wall_s": round(wall, 2),
        "images_per_s": round(ok / wall, 1),
        "flags": " ".join(IMG2DATASET_MODES[mode]),
    }


def drain_time_wait(limit: int = 2000, timeout_s: float = 90) -> None:
    """Wait until few loopback sockets sit in TIME_WAIT (img2dataset opens one per image)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["ss", "-tan", "state", "time-wait"], capture_output=True, text=True
        ).stdout
        if out.count("\n") < limit:
            return
        time.sleep(2)


# --- level 2: end to end into moto ---------------------------------------------------------


def end_to_end(
    port: int, count: int, concurrency: int, images: Path, notifications: bool
) -> dict[str, float]:
    """Downloader into a moto bucket, and moto's ceiling for the same puts on another bucket."""
    from pixsearch import topology
    from pixsearch.config import Settings
    from pixsearch.download.downloader import Downloader
    from pixsearch.download.sink import BucketSink
    from pixsearch.download.urllist import UrlEntry
    from pixsearch.runtime.emulator import LOCAL_CREDENTIALS, free_port, launch
    from pixsearch.storage import ObjectStore, client

    moto = launch("moto", port=free_port(), log_path=WORK / "moto.log").start()
    try:
        os.environ.update(LOCAL_CREDENTIALS)
        os.environ["AWS_ENDPOINT_URL"] = moto.endpoint_url
        client.cache_clear()
        settings = Settings(
            bucket=f"bench-{uuid.uuid4().hex[:8]}",
            queue_prefix=f"bench-{uuid.uuid4().hex[:8]}-",
            download_allow=f"127.0.0.1:{port}",
            download_concurrency=concurrency,
            download_per_host_concurrency=concurrency,
            download_retries=0,
        )
        ceiling_settings = settings.model_copy(
            update={"bucket": settings.bucket + "-ceiling", "queue_prefix": "ceiling-"}
        )
        for each in (settings, ceiling_settings):
            topology.ensure(
                client("s3"),
                client("sqs"),
                each,
                visibility_timeout_s=30,
                notifications=notifications,
            )
        ceiling = moto_put_ceiling(ObjectStore(ceiling_settings.bucket), images, count)
        store = ObjectStore(settings.bucket)
        entries = [
            UrlEntry(n, f"http://127.0.0.1:{port}/i/{n}.jpg")
            for n in random.Random(3).sample(range(len(list(images.iterdir()))), count)
        ]
        started = time.perf_counter()
        rows = Downloader(settings, BucketSink(store)).run(entries)
        seconds = time.perf_counter() - started
        ok = sum(row.status != "failed" for row in rows)
        return {
            "ok": ok,
            "failed": len(rows) - ok,
            "seconds": round(seconds, 2),
            "images_per_s": round(ok / seconds, 1),
            "moto_put_ceiling_per_s": ceiling,
        }
    finally:
        moto.stop()


def moto_put_ceiling(store: Any, images: Path, count: int, threads: int = 8) -> float:
    """Puts/s moto sustains for the downloader's writes (same images, metadata, conditional
    put, thread count), with nothing else running."""
    from pixsearch.download.sink import source_url_metadata

    paths = sorted(images.iterdir())[:count]

    def put(path: Path) -> None:
        store.put_if_absent(
            f"images/ceiling/{uuid.uuid4().hex}.jpg",
            path.read_bytes(),
            content_type="image/jpeg",
            metadata=source_url_metadata(f"http://127.0.0.1:8080/i/{path.name}"),
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, paths))
    return round(len(paths) / (time.perf_counter() - started), 1)


if __name__ == "__main__":
    main()

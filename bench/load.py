"""Load benchmark: the served search API under many clients while new index versions land.

    .venv/bin/python bench/load.py                      # 64 clients, 60 s, tiny model on ONNX
    .venv/bin/python bench/load.py --seconds 300        # a soak: does resident memory level off?
    .venv/bin/python bench/load.py --clients 8 --seconds 10   # smoke run

A moto server holds an index published the way the index stage publishes it
(segments + manifest, replaced IfMatch). The API runs as ``make up``, compose and
the search container run it: ``functions/search/local.py`` (Flask under waitress,
``PIXSEARCH_API_THREADS``) in a process of its own, refreshing every second, with
the model on onnxruntime from an export made once into ``--onnx-dir`` (as ``make
up`` and the container do; ``--inference torch`` runs open_clip instead).
``--clients`` threads, each with a keep-alive connection, send for ``--seconds``
a mix of cached text queries (a few repeated texts), uncached ones (every text
new) and image-key queries (an image in the bucket, fetched and encoded), while
a publisher folds a new shard of ``--batch`` vectors into the index every
``--publish-every`` seconds through the index stage's own code (new segment,
tiered compaction, retention, manifest), so the segment count stays bounded as
in a real deployment. Reported: requests/s, p50/p99 per kind, every non-200 or
failed request (and those within a second of a version swap), the versions the
answers came from, the segment counts, and the API process's resident memory
before, every ``--rss-every`` seconds, and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import io
import itertools
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from search_harness import (  # noqa: E402
    ApiProcess,
    bench_environment,
    clustered_vectors,
    percentiles,
    publish,
)

from pixsearch import layout, shards  # noqa: E402
from pixsearch.config import Settings  # noqa: E402
from pixsearch.events import ObjectEvent  # noqa: E402
from pixsearch.index import manifest as manifests  # noqa: E402
from pixsearch.index.handler import index_events  # noqa: E402
from pixsearch.runtime.emulator import free_port, launch  # noqa: E402
from pixsearch.shards import ShardRow  # noqa: E402
from pixsearch.storage import ObjectStore  # noqa: E402

CACHED_TEXTS = ("a red car", "a dog on a beach", "mountains at sunset", "a bowl of fruit")
MIX = (("cached_text", 0.5), ("uncached_text", 0.3), ("image_key", 0.2))
IMAGES = 16


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def store_query_images(store: ObjectStore) -> list[str]:
    keys = []
    for number in range(IMAGES):
        buffer = io.BytesIO()
        Image.new("RGB", (96, 64), (number * 15 % 256, 80, 160)).save(buffer, format="PNG")
        key = layout.image_key(f"{number:064x}", "png")
        store.put(key, buffer.getvalue(), content_type="image/png")
        keys.append(key)
    return keys


@dataclasses.dataclass
class Sample:
    kind: str
    started: float
    seconds: float
    status: int  # 0: the request failed without an HTTP answer
    version: int | None


class Publisher(threading.Thread):
    """Every ``every_s``, writes a shard of ``batch`` new vectors and folds it in through
    the index stage's own code (:func:`pixsearch.index.handler.index_events`): a new
    segment, tiered compaction, retention, a manifest published IfMatch."""

    def __init__(
        self, store: ObjectStore, settings: Settings, dim: int, every_s: float, batch: int
    ) -> None:
        super().__init__(name="publisher", daemon=True)
        self.store, self.settings, self.dim = store, settings, dim
        self.every_s, self.batch = every_s, batch
        self.swaps: list[float] = []
        self.segment_counts: list[int] = []
        self.index_sizes: list[tuple[int, int]] = []  # (vectors, FAISS bytes) per version
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        tag = self.settings.model_tag
        for batch in itertools.count(1):
            if self.stop.wait(self.every_s):
                return
            vectors = clustered_vectors(self.batch, self.dim, seed=batch)
            rows = [
                ShardRow(
                    layout.image_key(f"{batch:08x}{i:056x}", "jpg"), f"etag-{batch}", None, 640, 480
                )
                for i in range(len(vectors))
            ]
            shard = shards.write(self.store, tag, rows, vectors)
            event = ObjectEvent(
                f"bench-{batch}",
                self.store.bucket,
                layout.shard_key(tag, shard),
                "ObjectCreated:Put",
            )
            failed = index_events([event], self.store, self.settings)
            if failed:
                self.failures.extend(str(error) for error in failed.values())
                continue
            self.swaps.append(time.monotonic())
            manifest = manifests.read(self.store, tag)[0]
            self.segment_counts.append(len(manifest.segments))
            self.index_sizes.append(
                (manifest.vector_count, sum(entry.bytes for entry in manifest.segments))
            )


def drive(port: int, clients: int, seconds: float, image_keys: list[str]) -> list[Sample]:
    samples: list[Sample] = []
    lock = threading.Lock()
    fresh = itertools.count()
    deadline = time.monotonic() + seconds

    def client_loop(number: int) -> None:
        rng = random.Random(number)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[Sample] = []
        while (started := time.monotonic()) < deadline:
            kind = rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
            if kind == "cached_text":
                body: dict = {"query_text": rng.choice(CACHED_TEXTS)}
            elif kind == "uncached_text":
                body = {"query_text": f"query number {next(fresh)} of the load run"}
            else:
                body = {"image_key": rng.choice(image_keys)}
            body["k"] = 10
            status, version = 0, None
            try:
                connection.request(
                    "POST", "/search", json.dumps(body), {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                payload = json.loads(response.read())
                status, version = response.status, payload.get("index_version")
            except (OSError, http.client.HTTPException, ValueError):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            mine.append(Sample(kind, started, time.monotonic() - started, status, version))
        connection.close()
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def report(samples: list[Sample], swaps: list[float], seconds: float) -> dict:
    by_kind: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_kind[sample.kind].append(sample)
    errors = [s for s in samples if s.status != 200]
    near_swap = [e for e in errors if any(abs(e.started - swap) <= 1.0 for swap in swaps)]
    ok = [s for s in samples if s.status == 200]
    return {
        "requests": len(samples),
        "requests_per_s": round(len(samples) / seconds, 1),
        "overall": {k: round(v, 1) for k, v in percentiles([s.seconds for s in ok]).items()},
        "by_kind": {
            kind: {
                "requests": len(group),
                **{
                    k: round(v, 1)
                    for k, v in percentiles([s.seconds for s in group if s.status == 200]).items()
                },
            }
            for kind, group in sorted(by_kind.items())
        },
        "errors": len(errors),
        "error_statuses": dict(Counter(s.status for s in errors)),
        "errors_within_1s_of_a_swap": len(near_swap),
        "versions_published": len(swaps),
        "versions_answered": sorted({s.version for s in ok if s.version is not None}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--model", default="pixsearch-tiny")
    parser.add_argument(
        "--inference",
        choices=("onnx", "torch"),
        default="onnx",
        help="the API's runtime (onnx, as the search container runs, exported into --onnx-dir)",
    )
    parser.add_argument(
        "--onnx-dir", type=Path, default=Path(tempfile.gettempdir()) / "pixsearch-onnx"
    )
    parser.add_argument("--publish-every", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=500, help="vectors per published shard")
    parser.add_argument("--api-threads", type=int, default=Settings().api_threads)
    parser.add_argument("--rss-every", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pixsearch-bench-load-"))
    runtime: dict[str, str] = {"PIXSEARCH_INFERENCE": args.inference}
    if args.inference == "onnx":
        from embed import ensure_export

        runtime["PIXSEARCH_ONNX_DIR"] = str(ensure_export(args.model, args.onnx_dir))
    with launch("moto", port=free_port(), log_path=work / "moto.log") as moto:
        env = bench_environment(
            moto,
            work,
            PIXSEARCH_MODEL=args.model,
            PIXSEARCH_SEARCH_REFRESH_S="1",
            PIXSEARCH_API_THREADS=str(args.api_threads),
            **runtime,
        )
        store = ObjectStore("bench")
        settings = Settings()
        from pixsearch.inference import load_model

        dim = load_model(settings).dim
        publish(store, settings.model_tag, clustered_vectors(args.vectors, dim), 50_000)
        image_keys = store_query_images(store)

        api = ApiProcess(env, work / "api.log")
        api.start()
        try:
            # One of each kind first, so "before" counts a warm process.
            drive(api.port, 1, 2.0, image_keys)
            rss_before = rss_bytes(api.process.pid)
            publisher = Publisher(store, settings, dim, args.publish_every, args.batch)
            publisher.start()
            timeline: list[tuple[float, float]] = []
            done = threading.Event()
            began = time.monotonic()

            def sample_rss() -> None:
                while not done.wait(args.rss_every):
                    mib = rss_bytes(api.process.pid) / 2**20
                    timeline.append((round(time.monotonic() - began), round(mib, 1)))

            sampler = threading.Thread(target=sample_rss, daemon=True)
            sampler.start()
            samples = drive(api.port, args.clients, args.seconds, image_keys)
            done.set()
            publisher.stop.set()
            publisher.join()
            rss_after = rss_bytes(api.process.pid)
        finally:
            api.stop()
    counts = publisher.segment_counts
    results = {
        "clients": args.clients,
        "seconds": args.seconds,
        "vectors": args.vectors,
        "model": args.model,
        "inference": args.inference,
        "api_threads": args.api_threads,
        **report(samples, publisher.swaps, args.seconds),
        "publish_failures": publisher.failures,
        "segments_min_max_last": [min(counts), max(counts), counts[-1]] if counts else None,
        "index_vectors_first_last": [publisher.index_sizes[i][0] for i in (0, -1)]
        if counts
        else None,
        "index_faiss_mib_first_last": [
            round(publisher.index_sizes[i][1] / 2**20, 1) for i in (0, -1)
        ]
        if counts
        else None,
        "api_rss_mib_before": round(rss_before / 2**20, 1),
        "api_rss_mib_after": round(rss_after / 2**20, 1),
        "api_rss_after_over_before": round(rss_after / rss_before, 3),
        "api_rss_mib_timeline": timeline,
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

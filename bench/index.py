"""Index benchmark: grow one index shard by shard through the real index stage, in one run.

    .venv/bin/python bench/index.py                                   # up to 2M, 512-d
    .venv/bin/python bench/index.py --max-vectors 60000 --shard 2000 --dim 64   # smoke run

A moto server bucket starts empty. Shards of ``--shard`` synthetic 512-d vectors,
clustered around random centres as CLIP embeddings are (one centre per 100
vectors), are generated one at a time (never all in memory), written as the embed
stage writes them, and folded in by the index stage's own entry point
(``index_events``, as a warm Lambda container calls it: dedup, flat segment,
tiered compaction, IVF template, publish, retention). Per run: wall time, peak
RSS of this process (VmHWM, reset before each run), bytes the run read and wrote.
The shard objects are deleted after their run so moto holds only the index.

At each checkpoint a separate search process loads the index as the search service
does (``load_snapshot``): its RSS, load time, recall@10 of 200 held-out queries
against an exact scan over every vector (kept up to date while streaming), p50
query time; then one more index run, and that process's incremental reload.
Growth stops at ``--max-vectors`` or once ``--budget-s`` is spent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixsearch import layout, shards  # noqa: E402
from pixsearch.config import Settings  # noqa: E402
from pixsearch.events import ObjectEvent  # noqa: E402
from pixsearch.index import manifest as manifests  # noqa: E402
from pixsearch.index.calibration import recall_at_k  # noqa: E402
from pixsearch.index.handler import index_events  # noqa: E402
from pixsearch.runtime.emulator import LOCAL_CREDENTIALS, free_port, launch  # noqa: E402
from pixsearch.storage import ObjectInfo, ObjectStore, client  # noqa: E402

TAG = "bench__random"
BUCKET = "bench-index"
K = 10


class CountingStore(ObjectStore):
    """The same bucket; counts the bytes an index run reads and writes."""

    read = written = 0

    def get_with_info(self, key: str) -> tuple[bytes, ObjectInfo]:
        data, info = super().get_with_info(key)
        self.read += len(data)
        return data, info

    def _put(self, key: str, data: bytes, *args: Any, **kwargs: Any) -> str:
        self.written += len(data)
        return super()._put(key, data, *args, **kwargs)


def key(number: int) -> str:
    return f"images/{number % 256:02x}/{number:064x}.jpg"


class Data:
    """Clustered unit vectors, reproducible by shard number (so nothing is kept)."""

    def __init__(self, dim: int, max_vectors: int) -> None:
        rng = np.random.default_rng(0)
        self.centres = rng.standard_normal((max(1, max_vectors // 100), dim), dtype=np.float32)
        self.dim = dim

    def vectors(self, seed: int, count: int) -> np.ndarray:
        rng = np.random.default_rng(seed + 1)
        vectors = self.centres[rng.integers(0, len(self.centres), count)]
        vectors += rng.standard_normal((count, self.dim), dtype=np.float32) * 0.9
        faiss.normalize_L2(vectors)
        return vectors


class Exact:
    """The exact top-k of each query over everything streamed so far."""

    def __init__(self, queries: np.ndarray) -> None:
        self.queries = queries
        self.scores = np.full((len(queries), K), -np.inf, dtype=np.float32)
        self.ids = np.full((len(queries), K), -1, dtype=np.int64)

    def add(self, first: int, vectors: np.ndarray) -> None:
        scores = self.queries @ vectors.T
        ids = np.broadcast_to(np.arange(first, first + len(vectors)), scores.shape)
        all_scores = np.concatenate([self.scores, scores], axis=1)
        all_ids = np.concatenate([self.ids, ids], axis=1)
        best = np.argsort(-all_scores, axis=1)[:, :K]
        self.scores = np.take_along_axis(all_scores, best, axis=1)
        self.ids = np.take_along_axis(all_ids, best, axis=1)


def peak_reset() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def rss_mb(field: str = "VmHWM", pid: str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


@dataclass
class Run:
    vectors: int  # index size after the run
    wall_s: float
    peak_mb: float
    read_mb: float
    written_mb: float
    segments: int


def index_run(store: CountingStore, settings: Settings, data: Data, number: int, size: int) -> Run:
    first = number * size
    vectors = data.vectors(number, size)
    rows = [
        shards.ShardRow(key(first + i), "e", f"http://b/{first + i}", 1, 1) for i in range(size)
    ]
    shard_id = shards.write(store, TAG, rows, vectors)
    del vectors, rows
    event = ObjectEvent(str(number), BUCKET, layout.shard_key(TAG, shard_id), "ObjectCreated:Put")
    store.read = store.written = 0
    peak_reset()
    tick = time.perf_counter()
    failures = index_events([event], store, settings)
    wall = time.perf_counter() - tick
    if failures:
        raise RuntimeError(f"index run {number} failed: {failures}")
    run = Run(0, wall, rss_mb(), store.read / 2**20, store.written / 2**20, 0)
    for shard_key in (layout.shard_key(TAG, shard_id), layout.shard_ids_key(TAG, shard_id)):
        store.delete(shard_key)
    current = manifests.read(store, TAG)[0]
    run.vectors, run.segments = current.vector_count, len(current.segments)
    return run


def search_worker() -> None:
    """A search process: load, answer, reload on request (lines of JSON on stdin/stdout)."""
    from pixsearch.index.reader import load_snapshot

    faiss.omp_set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    store = ObjectStore(BUCKET)
    snapshot = None
    for line in sys.stdin:
        request = json.loads(line)
        tick = time.perf_counter()
        snapshot = load_snapshot(store, TAG, previous=snapshot)
        load_s = time.perf_counter() - tick
        reply: dict[str, Any] = {"load_s": load_s, "reused": snapshot.reused_count}
        reply.update(segments=snapshot.segment_count, vectors=snapshot.vector_count)
        if request.get("queries"):
            queries = np.load(request["queries"], allow_pickle=False)
            exact = np.load(request["exact"], allow_pickle=False)
            found, times = [], []
            for query in queries:
                tick = time.perf_counter()
                hits = snapshot.search(query[None], K)[0]
                times.append(time.perf_counter() - tick)
                found.append([int(hit.key.rsplit("/", 1)[1].split(".")[0], 16) for hit in hits])
            reply["recall"] = recall_at_k(np.array(found), exact)
            reply["p50_ms"] = statistics.median(times) * 1000
        current = manifests.read(store, TAG)[0]
        probes = [str(entry.params["nprobe"]) for entry in current.segments if entry.kind == "ivf"]
        template = current.quantizer
        reply["ivf"] = f"{template.factory}, nprobe {'/'.join(probes)}" if template else "none"
        reply["rss_mb"] = rss_mb("VmRSS")
        reply["peak_mb"] = rss_mb("VmHWM")
        print(json.dumps(reply), flush=True)


def checkpoint(store, settings, data, exact, number, size, scratch: Path) -> tuple[dict, Run]:
    """Search process figures at this size, then one more run and its reload."""
    np.save(scratch / "queries.npy", exact.queries, allow_pickle=False)
    np.save(scratch / "exact.npy", exact.ids, allow_pickle=False)
    worker = subprocess.Popen(
        [sys.executable, __file__, "--search-worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    ask = {"queries": str(scratch / "queries.npy"), "exact": str(scratch / "exact.npy")}
    worker.stdin.write(json.dumps(ask) + "\n")
    worker.stdin.flush()
    loaded = json.loads(worker.stdout.readline())
    exact.add(number * size, data.vectors(number, size))
    extra = index_run(store, settings, data, number, size)
    worker.stdin.write("{}\n")
    worker.stdin.flush()
    reloaded = json.loads(worker.stdout.readline())
    worker.stdin.close()
    worker.wait(timeout=60)
    loaded["reload_s"], loaded["reload_reused"] = reloaded["load_s"], reloaded["reused"]
    loaded["reload_rss_mb"], loaded["peak_mb"] = reloaded["rss_mb"], reloaded["peak_mb"]
    return loaded, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-vectors", type=int, default=2_000_000)
    parser.add_argument("--shard", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=1500)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[100_000, 500_000, 1_000_000])
    parser.add_argument("--search-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["BENCH_THREADS"] = str(args.threads)
    faiss.omp_set_num_threads(args.threads)
    if args.search_worker:
        return search_worker()

    os.environ.update(LOCAL_CREDENTIALS)
    scratch = Path(tempfile.mkdtemp())
    server = launch("moto", port=free_port(), log_path=scratch / "moto.log").start()
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
    settings = Settings(bucket=BUCKET, index_grace_s=0)
    client("s3").create_bucket(Bucket=BUCKET)
    store = CountingStore(BUCKET)
    data = Data(args.dim, args.max_vectors)
    held_out = data.vectors(10**9, args.queries)
    exact = Exact(held_out)
    runs: list[Run] = []
    points: list[tuple[dict, Run]] = []
    started = time.perf_counter()
    pending = sorted(args.checkpoints)
    number = 0
    print(
        f"{args.dim}-d, shards of {args.shard:,}, limits {settings.index_memory_mb} MB, "
        f"{settings.index_time_s:.0f} s, fan-out {settings.index_compact_segments}",
        flush=True,
    )
    try:
        while True:
            exact.add(number * args.shard, data.vectors(number, args.shard))
            runs.append(index_run(store, settings, data, number, args.shard))
            number += 1
            run = runs[-1]
            if run.wall_s > 5 or number % 20 == 0:
                print(
                    f"  {run.vectors:>10,} vectors  {run.wall_s:6.1f} s  {run.peak_mb:6.0f} MB  "
                    f"read {run.read_mb:6.0f} MB  wrote {run.written_mb:6.0f} MB  "
                    f"{run.segments} segments",
                    flush=True,
                )
            done = run.vectors >= args.max_vectors or time.perf_counter() - started > args.budget_s
            if pending and (run.vectors >= pending[0] or done):
                while pending and pending[0] <= run.vectors:
                    pending.pop(0)
                point, extra = checkpoint(store, settings, data, exact, number, args.shard, scratch)
                number += 1
                points.append((point, extra))
                print(f"  checkpoint {point}", flush=True)
            if done:
                break
    finally:
        server.stop()
    report(runs, points, args, time.perf_counter() - started, settings)


def report(runs, points, args, elapsed, settings) -> None:
    print(f"\n{len(runs)} runs to {runs[-1].vectors:,} vectors in {elapsed:.0f} s")
    print(
        "| index size | runs | wall median (max) | peak RSS median (max) | read median (max) "
        "| written median (max) | segments |"
    )
    print("|---|---|---|---|---|---|---|")
    bands = [
        (0, 100_000),
        (100_000, 250_000),
        (250_000, 500_000),
        (500_000, 1_000_000),
        (1_000_000, 1_500_000),
        (1_500_000, 2_000_000),
        (2_000_000, 10**12),
    ]
    medians = {}
    for low, high in bands:
        band = [run for run in runs if low < run.vectors <= high]
        if not band:
            continue

        def cell(values: list[float], unit: str, digits: int = 0) -> str:
            return f"{statistics.median(values):.{digits}f} ({max(values):.{digits}f}) {unit}"

        medians[high] = statistics.median(run.wall_s for run in band)
        segments = [run.segments for run in band]
        print(
            f"| {low:,}–{min(high, band[-1].vectors):,} | {len(band)} | "
            f"{cell([r.wall_s for r in band], 's', 2)} | {cell([r.peak_mb for r in band], 'MB')} | "
            f"{cell([r.read_mb for r in band], 'MB')} | "
            f"{cell([r.written_mb for r in band], 'MB')} | "
            f"{statistics.median(segments):.0f} ({max(segments)}) |"
        )
    first, last = list(medians.values())[0], list(medians.values())[-1]
    print(f"median run, largest band / first band: {last / first:.2f} (goal <= 2)")
    worst = max(runs, key=lambda run: run.wall_s)
    heaviest = max(runs, key=lambda run: run.peak_mb)
    print(
        f"slowest run {worst.wall_s:.1f} s at {worst.vectors:,}; highest peak "
        f"{heaviest.peak_mb:.0f} MB at {heaviest.vectors:,} (limits {settings.index_time_s:.0f} s,"
        f" {settings.index_memory_mb} MB)"
    )
    print(
        "| index size | search RSS | load | recall@10 | p50 query | +1 run "
        "| reload (segments kept) | RSS after reload | IVF |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for point, extra in points:
        print(
            f"| {point['vectors']:,} | {point['rss_mb']:.0f} MB | {point['load_s']:.2f} s | "
            f"{point['recall']:.3f} | {point['p50_ms']:.1f} ms | {extra.wall_s:.2f} s | "
            f"{point['reload_s']:.3f} s ({point['reload_reused']}/{extra.segments}) | "
            f"{point['reload_rss_mb']:.0f} MB | {point['ivf']} |"
        )
    if len(points) >= 2:
        extrapolate(points[0][0], points[-1][0], args.dim)


def extrapolate(first: dict, last: dict, dim: int, target: int = 10_000_000) -> None:
    """Search RSS at ``target`` vectors from the growth between two checkpoints, as SQ8
    (``dim`` bytes of codes a vector) and with PQ codes of 64 and 128 bytes instead."""
    per_vector = (last["rss_mb"] - first["rss_mb"]) * 2**20 / (last["vectors"] - first["vectors"])
    base = last["rss_mb"] - last["vectors"] * per_vector / 2**20
    print(f"search RSS per vector {per_vector:.0f} B (SQ8 codes {dim} B), base {base:.0f} MB")
    for name, code in (("SQ8", dim), ("PQ128", 128), ("PQ64", 64)):
        if code > dim:
            continue
        total = base + target * (per_vector - dim + code) / 2**20
        print(f"  {target:,} vectors as {name}: ~{total:,.0f} MB")


if __name__ == "__main__":
    main()

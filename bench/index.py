"""Index benchmark: the cost of an index run against the size of the index, in one run.

    .venv/bin/python bench/index.py                          # 10k and 1M base, 512-d
    .venv/bin/python bench/index.py --sizes 2000 60000 --dim 64   # smoke run

For each base size a moto server bucket gets an index published the way the
index stage publishes it (one segment: flat up to ``index_flat_max``, IVF above).
Then, in a warm process (as a reused Lambda container is), ``--runs`` index
runs per size, interleaved across sizes so that load from other processes hits
all alike, each fold one new shard of ``--add`` vectors in: read the shard,
dedup its keys against the live segments, build a segment, publish the
manifest. The median time at the largest base over the smallest is the ratio
we hold (goal <= 2: cost grows with the batch, not the index). The first run of
a cold process, which loads and verifies each segment once, is reported apart.

At the largest size the next run also compacts everything into one segment;
then the published index (as the search service loads it) is compared with an
exact flat scan over the same vectors: recall@10 and p50 latency of single
queries. Vectors are clustered around random centres, as CLIP embeddings are;
the queries are held-out vectors of the same distribution.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixsearch.config import Settings  # noqa: E402
from pixsearch.embed import shard as shards  # noqa: E402
from pixsearch.index import manifest as manifests  # noqa: E402
from pixsearch.index import segment as segments  # noqa: E402
from pixsearch.index import update  # noqa: E402
from pixsearch.index.reader import IndexSnapshot, load_snapshot  # noqa: E402
from pixsearch.runtime.emulator import LOCAL_CREDENTIALS, free_port, launch  # noqa: E402
from pixsearch.storage import ObjectStore, client  # noqa: E402

TAG = "bench__random"
K = 10


def clustered(count: int, dim: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    vectors = centres[rng.integers(0, len(centres), count)]
    vectors += rng.standard_normal((count, dim), dtype=np.float32) * 0.9
    faiss.normalize_L2(vectors)
    return vectors


def key(number: int) -> str:
    return f"images/{number % 256:02x}/{number:064x}.jpg"


def rows(first: int, count: int) -> segments.Rows:
    keys = [key(n) for n in range(first, first + count)]
    return segments.Rows(
        keys, [f"http://bench/{n}" for n in range(count)], [1] * count, [1] * count
    )


def apply(store: ObjectStore, shard: shards.Shard, settings: Settings, compact: int) -> float:
    """One index run as the handler does it; returns seconds."""
    tick = time.perf_counter()
    loaded = shards.read(store, TAG, shard.shard_id)
    update.apply(
        store,
        TAG,
        [loaded],
        [],
        flat_max=settings.index_flat_max,
        compact_segments=compact,
        image_exists=lambda _: True,
    )
    return time.perf_counter() - tick


def write_shard(store: ObjectStore, first: int, vectors: np.ndarray) -> shards.Shard:
    batch = [shards.ShardRow(key(first + i), "e", None, 1, 1) for i in range(len(vectors))]
    identifier = shards.write(store, TAG, batch, vectors)
    return shards.Shard(identifier, TAG, tuple(batch), vectors)


@dataclass
class Bench:
    """One base size: its bucket, data distribution and what was added so far."""

    base: int
    store: ObjectStore
    centres: np.ndarray
    rng: np.random.Generator
    vectors: list[np.ndarray]
    factory: str
    build_s: float
    add_s: list[float] = field(default_factory=list)

    def add(self, args: argparse.Namespace, settings: Settings, compact: int = 10**6) -> float:
        batch = clustered(args.add, args.dim, self.centres, self.rng)
        first = sum(len(part) for part in self.vectors)
        self.vectors.append(batch)
        return apply(self.store, write_shard(self.store, first, batch), settings, compact)


def set_up(base: int, args: argparse.Namespace, settings: Settings) -> Bench:
    """A bucket holding an index of ``base`` vectors, published as the index stage does."""
    rng = np.random.default_rng(base)
    centres = rng.standard_normal((max(1, base // 100), args.dim)).astype(np.float32)
    vectors = clustered(base, args.dim, centres, rng)
    bucket = f"bench-index-{base}"
    client("s3").create_bucket(Bucket=bucket)
    store = ObjectStore(bucket)
    tick = time.perf_counter()
    built, index_bytes, rows_bytes = segments.build(vectors, rows(0, base), settings.index_flat_max)
    segments.save(store, TAG, built.entry, index_bytes, rows_bytes)
    del index_bytes, rows_bytes
    manifests.publish(
        store, manifests.Manifest(TAG, args.dim, 1, (built.entry,), frozenset({"base"})), None
    )
    build_s = time.perf_counter() - tick
    print(f"base {base:>9,}: {built.entry.factory} {built.entry.params} built in {build_s:.1f}s")
    return Bench(base, store, centres, rng, [vectors], built.entry.factory, build_s)


def measure(
    snapshot: IndexSnapshot, everything: np.ndarray, bench: Bench, args: argparse.Namespace
) -> dict[str, object]:
    """recall@10 and p50 single-query latency of the published index against a flat scan."""
    queries = clustered(args.queries, args.dim, bench.centres, bench.rng)
    position = {key(n): n for n in range(len(everything))}
    exact_ids, exact_ms, found_ids, found_ms = [], [], [], []
    for query in queries:
        tick = time.perf_counter()
        _, ids = faiss.knn(query[None], everything, K, metric=faiss.METRIC_INNER_PRODUCT)
        exact_ms.append((time.perf_counter() - tick) * 1000)
        tick = time.perf_counter()
        hits = snapshot.search(query[None], K)[0]
        found_ms.append((time.perf_counter() - tick) * 1000)
        exact_ids.append(ids[0])
        found_ids.append([position[hit.key] for hit in hits])
    entry = manifests.read(bench.store, TAG)[0].segments[0]
    return {
        "factory": entry.factory,
        "params": entry.params,
        "segments": snapshot.segment_count,
        "vectors": snapshot.vector_count,
        "recall": segments.recall_at_k(np.array(found_ids), np.array(exact_ids)),
        "p50_ms": statistics.median(found_ms),
        "exact_p50_ms": statistics.median(exact_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--add", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)

    os.environ.update(LOCAL_CREDENTIALS)
    server = launch(
        "moto", port=free_port(), log_path=Path(tempfile.mkdtemp()) / "moto.log"
    ).start()
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
    try:
        settings = Settings()
        benches = [set_up(base, args, settings) for base in sorted(args.sizes)]
        cold = {bench.base: bench.add(args, settings) for bench in benches}
        for _ in range(args.runs):  # interleaved, so load from elsewhere hits all sizes alike
            for bench in benches:
                bench.add_s.append(bench.add(args, settings))
        largest = benches[-1]
        compact_s = largest.add(args, settings, compact=2)
        tick = time.perf_counter()
        snapshot = load_snapshot(largest.store, TAG)
        load_s = time.perf_counter() - tick
        quality = measure(snapshot, np.concatenate(largest.vectors), largest, args)
    finally:
        server.stop()

    small, large = benches[0], benches[-1]
    ratio = statistics.median(large.add_s) / statistics.median(small.add_s)
    print(
        f"\n{args.dim}-d, {args.add} vectors per run, {args.runs} runs each, {args.threads} threads"
    )
    print("base        index                 build    add: cold process   warm (median, min-max)")
    for bench in benches:
        warm_ms = [seconds * 1000 for seconds in bench.add_s]
        print(
            f"{bench.base:>9,}   {bench.factory:<20} {bench.build_s:6.1f}s   "
            f"{cold[bench.base] * 1000:8.0f} ms         {statistics.median(warm_ms):6.0f} ms"
            f" ({min(warm_ms):.0f}-{max(warm_ms):.0f})"
        )
    print(f"ratio {large.base:,} / {small.base:,} (warm medians): {ratio:.2f}  (goal <= 2)")
    print(
        f"at {large.base:,}: add + compaction {compact_s:.1f}s -> {quality['segments']} segment "
        f"{quality['factory']} {quality['params']}, {quality['vectors']:,} vectors; "
        f"snapshot load {load_s:.1f}s"
    )
    print(
        f"recall@{K} {quality['recall']:.3f} (goal >= 0.95); p50 {quality['p50_ms']:.2f} ms "
        f"vs exact flat scan {quality['exact_p50_ms']:.2f} ms"
    )


if __name__ == "__main__":
    main()

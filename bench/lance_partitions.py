"""recall@10 and query time of IVF_RQ by target partition size and share of partitions
searched, on ``bench/vector_store.py``'s vectors in a LanceDB table on local disk.

    .venv/bin/python bench/lance_partitions.py --rows 2000000 --sizes 1414,1000,707 \\
        --shares 0.12,0.16,0.2,0.25

Each size is a training of its own on every row (LanceDB's k-means is seeded at
random, so one size trained twice recalls differently: list it twice to see by how
much). The table has no object store under it and one index segment, so its query
times are LanceDB's compute alone: ``bench/lance_sweep.py`` measures a table the
index stage built, on MiniStack, with its deltas and caches.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import IvfRq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lance_sweep import queries_and_truth, timed_recall  # noqa: E402
from bench.vector_store import DIM, clustered  # noqa: E402
from pixsearch.vectorstore.lance_indexes import RQ_BITS  # noqa: E402

SCHEMA = pa.schema([("n", pa.int64()), ("vector", pa.list_(pa.float32(), DIM))])
BATCH = 100_000


def batches(vectors: np.ndarray) -> Iterator[pa.RecordBatch]:
    for first in range(0, len(vectors), BATCH):
        part = vectors[first : first + BATCH]
        numbers = pa.array(np.arange(first, first + len(part)))
        flat = pa.FixedSizeListArray.from_arrays(pa.array(part.ravel()), DIM)
        yield pa.record_batch([numbers, flat], schema=SCHEMA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--sizes", required=True, help="target partition sizes, comma-separated")
    parser.add_argument("--shares", default="0.12,0.2", help="shares of partitions searched")
    parser.add_argument("--refine", type=int, default=5, help="re-ranking factor")
    parser.add_argument("--queries", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pixsearch-bench-partitions-") as work:
        table = lancedb.connect(work).create_table(
            "t", data=batches(clustered(args.rows, seed=args.rows)), schema=SCHEMA
        )
        queries, truth = queries_and_truth(args.rows, args.queries)
        for size in (int(s) for s in args.sizes.split(",")):
            began = time.perf_counter()
            config = IvfRq(distance_type="cosine", target_partition_size=size, num_bits=RQ_BITS)
            table.create_index("vector", config=config, replace=True)
            partitions = args.rows / size
            took_s = time.perf_counter() - began
            print(f"size {size} (~{partitions:.0f} partitions) trained in {took_s:.0f} s")
            for share in (float(s) for s in args.shares.split(",")):
                probes = max(1, round(share * partitions))
                recall, took = timed_recall(
                    table, queries, truth, probes, args.refine, column="n", number=int
                )
                p50_ms = statistics.median(took) * 1000
                line = f"  {probes} partitions ({share:.0%}): recall@10 {recall:.3f}"
                print(f"{line}, p50 {p50_ms:.0f} ms", flush=True)


if __name__ == "__main__":
    main()

"""recall@10 and query time of a LanceDB table built by ``bench/vector_store.py``, by the
partitions searched, the re-ranking factor and (``--cache-mb``) the index cache (and,
with ``--retrain-bits``, after retraining its index in place as IVF_RQ with that many
bits a dimension).

    .venv/bin/python bench/vector_store.py --sizes 1000000 --engines lancedb --backend ministack
    .venv/bin/python bench/lance_sweep.py --store /tmp/pixsearch-bench-vectors-XXXX/store \\
        --rows 1000000 --probes 84,126,168 --refine 2,10
    .venv/bin/python bench/lance_sweep.py --store ... --rows 1000000 --retrain-bits 2 \\
        --probes 126 --refine 5,3,5
    .venv/bin/python bench/lance_sweep.py --store ... --rows 2000000 --probes 283,283 \\
        --cache-mb 256,512

In process, against MiniStack on the stored directory, with the queries
``bench/vector_store.py`` measures recall with (stored vectors moved by
neighbour-sized noise, spread over the table, unlike its HTTP queries). A
combination listed twice runs twice: the first pays for filling the index cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.vector_store import DIM, MODEL, K, clustered  # noqa: E402
from pixsearch.runtime.emulator import LOCAL_CREDENTIALS, free_port, launch  # noqa: E402


def queries_and_truth(rows: int, count: int) -> tuple[np.ndarray, list[set[int]]]:
    """``bench/vector_store.py``'s recall queries for a table of ``rows``, and their exact
    top ``K`` (row numbers)."""
    vectors = clustered(rows, seed=rows)
    rng = np.random.default_rng(1)
    picks = rng.choice(rows, count, replace=False)
    noise = rng.standard_normal((count, DIM)).astype(np.float32) * (0.5 / np.sqrt(DIM))
    queries = vectors[picks] + noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return queries, [set(np.argpartition(-(vectors @ q), K)[:K].tolist()) for q in queries]


def row_number(key: str) -> int:
    return int(key.split("/")[-1].split(".")[0], 16)


def timed_recall(
    table: Any,
    queries: np.ndarray,
    truth: list[set[int]],
    probes: int,
    refine: int,
    column: str = "key",
    number: Callable[[Any], int] = row_number,
) -> tuple[float, list[float]]:
    """recall@``K`` of ``queries`` searching ``probes`` partitions, re-ranking ``refine``
    times ``K``, and each query's seconds (``number`` maps ``column`` to a row number)."""
    found, took = 0, []
    for query, exact in zip(queries, truth, strict=True):
        began = time.perf_counter()
        search = table.search(query, vector_column_name="vector")
        search = search.distance_type("cosine").limit(K).refine_factor(refine)
        search = search.minimum_nprobes(probes).maximum_nprobes(probes)
        values = search.select([column]).to_arrow()[column].to_pylist()
        took.append(time.perf_counter() - began)
        found += len(exact & {number(value) for value in values})
    return found / (K * len(queries)), took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="the run's MiniStack directory")
    parser.add_argument("--rows", type=int, required=True, help="the size the run built")
    parser.add_argument("--probes", required=True, help="partitions searched, comma-separated")
    parser.add_argument("--refine", default="5", help="re-ranking factors, comma-separated")
    parser.add_argument("--retrain-bits", type=int, help="retrain as IVF_RQ with these bits")
    parser.add_argument("--cache-mb", help="index cache sizes (MB), comma-separated")
    parser.add_argument("--queries", type=int, default=60)
    args = parser.parse_args()
    bucket = f"bench-lancedb-{args.rows}"
    log = args.store.parent / "sweep-ministack.log"
    with launch("ministack", port=free_port(), data_dir=args.store, log_path=log) as server:
        os.environ.update({**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": server.endpoint_url})
        from pixsearch.config import Settings
        from pixsearch.storage import ObjectStore
        from pixsearch.vectorstore.lance_indexes import index_on, train_vector_index
        from pixsearch.vectorstore.lance_tables import ROWS, LanceTables

        settings = Settings(bucket=bucket, model=MODEL, pretrained="", vector_store="lancedb")
        table = LanceTables(settings, ObjectStore(bucket), settings.model_tag).open(ROWS)
        if args.retrain_bits:
            began = time.perf_counter()
            train_vector_index(table, table.count_rows(), bits=args.retrain_bits)
            trained_s = time.perf_counter() - began
            print(f"retrained as IVF_RQ, {args.retrain_bits} bits, in {trained_s:.0f} s")
        print(table.index_stats(index_on(table, "vector").name))
        queries, truth = queries_and_truth(args.rows, args.queries)
        caches = [int(c) for c in args.cache_mb.split(",")] if args.cache_mb else [None]
        for cache_mb in caches:
            if cache_mb is not None:  # a search process of its own, with this index cache
                capped = settings.model_copy(update={"lance_index_cache_mb": cache_mb})
                table = LanceTables(capped, ObjectStore(bucket), settings.model_tag).open(ROWS)
            for probes in (int(p) for p in args.probes.split(",")):
                for refine in (int(r) for r in args.refine.split(",")):
                    recall, took = timed_recall(table, queries, truth, probes, refine)
                    print(
                        f"cache {cache_mb or settings.lance_index_cache_mb} MB, probes {probes},"
                        f" refine {refine}: recall@10 {recall:.3f},"
                        f" p50 {statistics.median(took) * 1000:.0f} ms,"
                        f" mean {statistics.fmean(took) * 1000:.0f} ms",
                        flush=True,
                    )


if __name__ == "__main__":
    main()

"""Which IVF codec large segments use: code size against recall@10, on the index bench's data.

    .venv/bin/python bench/index_codecs.py                       # 200k 512-d vectors
    .venv/bin/python bench/index_codecs.py --vectors 20000 --dim 64 --codecs SQ8 PQ16  # smoke

The vectors are bench/index.py's (clustered like CLIP embeddings, one centre per 100).
Each codec is trained as the index's template is (``IVF{nlist},<codec>`` from FAISS's
``index_factory`` on the same 65,536-vector sample), filled with every vector, and
calibrated as a segment is (:func:`pixsearch.index.calibration.nprobe`). Per codec:
bytes of code a vector, training time, recall@10 of held-out queries against an exact
float scan at the calibrated ``nprobe`` and at every list, and recall when the top
100 are re-ranked by their float vectors (what a re-rank would gain if the float
vectors were at hand; search holds only the codes).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.index import Data  # noqa: E402
from pixsearch.index import calibration  # noqa: E402

SAMPLE = 65_536
RERANK = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--codecs", nargs="+", default=["SQ8", "SQ6", "SQ4", "PQ128", "PQ64"])
    args = parser.parse_args()
    data = Data(args.dim, args.vectors)
    vectors = np.concatenate(
        [data.vectors(seed, 10_000) for seed in range(-(-args.vectors // 10_000))]
    )[: args.vectors]
    queries = data.vectors(10**9, args.queries)
    _, exact = faiss.knn(queries, vectors, calibration.K, metric=faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    sample = vectors[rng.choice(len(vectors), size=min(SAMPLE, len(vectors)), replace=False)]
    print(f"{args.vectors:,} vectors, {args.dim}-d, IVF{args.nlist}, {args.queries} queries")
    print(
        "| codec | code bytes/vector | train | nprobe | recall@10 | recall@10, every list "
        f"| top {RERANK} re-ranked by float vectors |"
    )
    print("|---|---|---|---|---|---|---|")
    for codec in args.codecs:
        factory = f"IVF{args.nlist},{codec}"
        index = faiss.index_factory(args.dim, factory, faiss.METRIC_INNER_PRODUCT)
        tick = time.perf_counter()
        index.train(sample)
        train_s = time.perf_counter() - tick
        index.add(vectors)
        probes = calibration.nprobe(index)
        recalls = []
        for nprobe in (probes, args.nlist):
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            _, found = index.search(queries, calibration.K, params=params)
            recalls.append(calibration.recall_at_k(found, exact))
        params = faiss.SearchParametersIVF(nprobe=probes)
        _, candidates = index.search(queries, RERANK, params=params)
        scores = np.einsum("qd,qkd->qk", queries, vectors[candidates])
        best = np.argsort(-scores, axis=1)[:, : calibration.K]
        reranked = calibration.recall_at_k(np.take_along_axis(candidates, best, axis=1), exact)
        code_bytes = faiss.extract_index_ivf(index).code_size
        print(
            f"| {factory} | {code_bytes} | {train_s:.0f} s | {probes} | {recalls[0]:.3f} "
            f"| {recalls[1]:.3f} | {reranked:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

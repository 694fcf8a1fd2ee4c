"""How many inverted lists an IVF segment probes: calibrated on the segment's own rows.

``nprobe`` only decides which lists a query visits, so it is calibrated against the
same index searching every list (an exhaustive scan of the segment's own codes),
not against float vectors: the scalar quantizer's own loss (about two points of
recall@10) is the same at every ``nprobe`` and no amount of probing recovers it.
Each merge calibrates the segment it writes, so ``nprobe`` follows the data as
segments grow rather than a sample taken when the template was trained.
"""

from __future__ import annotations

import faiss
import numpy as np

RECALL_TARGET = 0.98
"""Probing recall@10 against all lists; with SQ8's own loss the promise is >= 0.95."""
CALIBRATION_QUERIES = 200
K = 10


def nprobe(index: faiss.Index) -> int:
    """The smallest power-of-two ``nprobe`` (at most every list) at which ``index``, an IVF
    index holding rows, finds :data:`RECALL_TARGET` of its exhaustive top-10 for each kind
    of probe query built from its own rows."""
    ivf = faiss.extract_index_ivf(index)
    queries = calibration_queries(_sample_rows(index, CALIBRATION_QUERIES), CALIBRATION_QUERIES)
    k = min(K, index.ntotal)
    _, exhaustive = index.search(queries, k, params=faiss.SearchParametersIVF(nprobe=ivf.nlist))
    probes = 1
    while probes < ivf.nlist:
        _, found = index.search(queries, k, params=faiss.SearchParametersIVF(nprobe=probes))
        kinds = zip(np.array_split(found, 2), np.array_split(exhaustive, 2), strict=True)
        if min(recall_at_k(f, e) for f, e in kinds) >= RECALL_TARGET:
            break
        probes = min(probes * 2, ivf.nlist)
    return probes


def _sample_rows(index: faiss.Index, count: int) -> np.ndarray:
    """Up to ``count`` of the index's rows, decoded (a reproducible sample)."""
    ivf = faiss.extract_index_ivf(index)
    rng = np.random.default_rng(0)
    ids = np.sort(rng.choice(index.ntotal, size=min(count, index.ntotal), replace=False))
    ivf.make_direct_map(True)
    try:
        return index.reconstruct_batch(ids)
    finally:
        ivf.set_direct_map_type(faiss.DirectMap.NoMap)


def calibration_queries(vectors: np.ndarray, count: int) -> np.ndarray:
    """Probe queries like the ones search sees: stored vectors moved by noise as large as
    the typical distance between neighbours (image-to-image queries), and midpoints of
    two stored vectors (queries that sit between groups of images)."""
    rng = np.random.default_rng(1)
    half = max(1, count // 2)
    dim = vectors.shape[1]
    picks = rng.choice(len(vectors), size=(3, half))
    noisy = vectors[picks[0]] + rng.normal(scale=0.5 / np.sqrt(dim), size=(half, dim))
    between = vectors[picks[1]] + vectors[picks[2]]
    queries = np.concatenate([noisy, between]).astype(np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each exact top-k that the approximate top-k found."""
    hits = sum(len(set(f.tolist()) & set(e.tolist())) for f, e in zip(found, exact, strict=True))
    return hits / exact.size

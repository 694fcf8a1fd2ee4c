"""The index's one trained IVF template, stored as its own object and shared by segments.

It is an empty ``IVF{nlist},SQ8`` index (inner product): coarse centroids and the
scalar quantizer's ranges, trained once on a sample of the first vectors that need
an IVF segment. Every IVF segment is a copy of it with vectors added, so segments
merge by moving inverted lists. ``nprobe`` is calibrated on the training sample,
raised until recall@10 against exact search reaches :data:`RECALL_TARGET` for each
kind of probe query, and every segment is searched with it.
"""

from __future__ import annotations

import hashlib
import threading

import faiss
import numpy as np

from pixsearch import layout
from pixsearch.index.manifest import QuantizerEntry
from pixsearch.index.segment import get_checked, put_immutable
from pixsearch.storage import ObjectStore

RECALL_TARGET = 0.97  # measured on a sample; the promise is >= 0.95
CALIBRATION_QUERIES = 200
MIN_POINTS_PER_LIST = 39  # FAISS warns below this many training points per centroid
SAMPLE_PER_LIST = 64

Template = tuple[QuantizerEntry, faiss.Index]

_loaded: dict[tuple[str, str, str], faiss.Index] = {}
_lock = threading.Lock()


def train(vectors: np.ndarray, nlist: int) -> tuple[Template, bytes]:
    """A template trained on (a sample of) ``vectors``, and its serialized bytes."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    nlist = int(max(1, min(nlist, len(vectors) // MIN_POINTS_PER_LIST)))
    factory = f"IVF{nlist},SQ8"
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    size = min(len(vectors), SAMPLE_PER_LIST * nlist)
    sample = vectors[np.sort(rng.choice(len(vectors), size=size, replace=False))]
    index.train(sample)
    data = faiss.serialize_index(index).tobytes()
    probe = faiss.clone_index(index)
    probe.add(sample)
    digest = hashlib.sha256(data).hexdigest()
    entry = QuantizerEntry(
        id=digest[:32],
        sha256=digest,
        factory=factory,
        nlist=nlist,
        nprobe=_calibrate_nprobe(probe, sample),
    )
    return (entry, index), data


def save(store: ObjectStore, model_tag: str, entry: QuantizerEntry, data: bytes) -> None:
    put_immutable(store, layout.quantizer_key(model_tag, entry.id), data)


def load(store: ObjectStore, model_tag: str, entry: QuantizerEntry) -> Template:
    """The template (read once per process: it never changes), checksum verified."""
    cache_key = (store.bucket, model_tag, entry.id)
    with _lock:
        index = _loaded.get(cache_key)
    if index is None:
        data = get_checked(store, layout.quantizer_key(model_tag, entry.id), entry.sha256)
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        with _lock:
            _loaded[cache_key] = index
    return entry, index


def _calibrate_nprobe(index: faiss.Index, vectors: np.ndarray) -> int:
    """The smallest power-of-two nprobe whose recall@10 meets the target for each kind of
    probe query."""
    queries = calibration_queries(vectors, CALIBRATION_QUERIES)
    k = min(10, len(vectors))
    _, exact = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    nlist = faiss.extract_index_ivf(index).nlist
    nprobe = 1
    while True:
        _, found = index.search(queries, k, params=faiss.SearchParametersIVF(nprobe=nprobe))
        kinds = zip(np.array_split(found, 2), np.array_split(exact, 2), strict=True)
        if min(recall_at_k(f, e) for f, e in kinds) >= RECALL_TARGET or nprobe >= nlist:
            return nprobe
        nprobe = min(nprobe * 2, nlist)


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

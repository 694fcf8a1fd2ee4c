"""The index's one trained IVF template, stored as its own object and shared by segments.

It is an empty ``IVF{nlist},SQ8`` index (inner product): coarse centroids and the
scalar quantizer's ranges, trained once on a sample of the first vectors that need
an IVF segment. Every IVF segment is a copy of it with vectors added, so segments
merge by moving inverted lists. Its ``nprobe`` is calibrated on the training sample
(see :mod:`pixsearch.index.calibration`); each segment is calibrated again on its
own rows when it is written, and searched with its own.
"""

from __future__ import annotations

import hashlib
import threading

import faiss
import numpy as np

from pixsearch import layout
from pixsearch.index import calibration
from pixsearch.index.manifest import QuantizerEntry
from pixsearch.index.segment import get_checked, put_immutable
from pixsearch.storage import ObjectStore

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
        nprobe=calibration.nprobe(probe),
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

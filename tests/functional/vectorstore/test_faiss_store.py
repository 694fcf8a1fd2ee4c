"""The faiss engine's memory across index versions: a swapped-out snapshot is freed."""

from __future__ import annotations

import gc
import weakref

from pixsearch import layout
from pixsearch.config import Settings
from pixsearch.storage import ObjectStore
from pixsearch.vectorstore.faiss_store import FaissStore
from tests.fixtures.model import unit_vectors, write_shard

TAG = "memory-model__none"
DIM = 16


def add_version(vectors: FaissStore, store: ObjectStore, first: int) -> None:
    keys = [layout.image_key(f"{number:064x}", "jpg") for number in range(first, first + 20)]
    vectors.add([write_shard(store, TAG, keys, unit_vectors(len(keys), DIM, seed=first))])


def test_the_previous_snapshot_is_freed_once_a_new_version_is_loaded(
    settings: Settings, bucket_store: ObjectStore
) -> None:
    vectors = FaissStore(settings.model_copy(update={"search_refresh_s": 0.0}), bucket_store, TAG)
    query = unit_vectors(1, DIM, seed=99)[0]
    add_version(vectors, bucket_store, 0)
    vectors.refresh()
    first = vectors.cache.current()
    assert vectors.search(query, 5).version == first.version
    # A hybrid query builds the version's caption index, which must not outlive it.
    assert vectors.search(query, 5, text="a zebra").version == first.version
    released = weakref.ref(first)
    del first

    add_version(vectors, bucket_store, 100)
    vectors.refresh()
    assert vectors.search(query, 5).version == vectors.cache.current().version
    assert vectors.cache.current().segment_count == 2  # the new version is the one served
    gc.collect()
    assert released() is None, gc.get_referrers(released())

"""Index updates on moto server: dedup, tombstones, compaction, index type by size, rebuild."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from pixsearch.index import manifest as manifests
from pixsearch.index import update
from pixsearch.index.reader import load_snapshot
from pixsearch.index.rebuild import rebuild
from pixsearch.index.segment import recall_at_k
from pixsearch.shards import Shard
from pixsearch.storage import ObjectStore
from tests.fixtures.model import unit_vectors, write_shard

TAG = "test-model__none"
DIM = 16


def _apply(
    store: ObjectStore,
    shards: list[Shard] = (),
    removed: list[str] = (),
    *,
    flat_max: int = 1000,
    compact_segments: int = 8,
) -> manifests.Manifest:
    return update.apply(
        store,
        TAG,
        shards,
        removed,
        flat_max=flat_max,
        compact_segments=compact_segments,
        image_exists=lambda key: store.head(key) is not None,
    )


def _keys(first: int, count: int) -> list[str]:
    return [f"images/{n:02x}/{n:064x}.png" for n in range(first, first + count)]


def _shard(store: ObjectStore, first: int, count: int, seed: int = 0) -> Shard:
    return write_shard(store, TAG, _keys(first, count), unit_vectors(count, DIM, seed + first))


def test_each_shard_adds_one_segment_and_a_replayed_shard_nothing(store: ObjectStore):
    a, b = _shard(store, 0, 5), _shard(store, 5, 3)
    first = _apply(store, [a])
    second = _apply(store, [b, a])
    again = _apply(store, [b])
    assert (first.version, first.vector_count, len(first.segments)) == (1, 5, 1)
    assert (second.version, second.vector_count, len(second.segments)) == (2, 8, 2)
    assert again == second
    assert manifests.read(store, TAG)[0] == second
    assert manifests.read_version(store, TAG, 1) == first


def test_an_image_in_two_shards_is_one_vector(store: ObjectStore):
    overlapping = write_shard(store, TAG, _keys(3, 4), unit_vectors(4, DIM, 9))
    published = _apply(store, [_shard(store, 0, 5), overlapping])
    assert published.vector_count == 7
    assert _apply(store, [_shard(store, 6, 2)]).vector_count == 8


def test_removal_before_its_shard_keeps_the_image_out(store: ObjectStore):
    removed = _keys(1, 1)[0]
    _apply(store, removed=[removed])
    published = _apply(store, [_shard(store, 0, 3)])
    assert published.vector_count == 2
    assert removed in published.tombstones
    snapshot = load_snapshot(store, TAG)
    hits = snapshot.search(unit_vectors(3, DIM, 0), k=3)
    assert all(removed not in {hit.key for hit in found} for found in hits)


def test_removal_of_an_image_that_is_back_is_ignored(store: ObjectStore):
    key = _keys(0, 1)[0]
    store.put(key, b"re-uploaded")
    assert _apply(store, [_shard(store, 0, 2)], removed=[key]).tombstones == frozenset()


def test_compaction_merges_segments_and_drops_tombstoned_rows(store: ObjectStore):
    for first in range(0, 12, 3):
        published = _apply(store, [_shard(store, first, 3)], compact_segments=3)
    assert (len(published.segments), published.vector_count) == (1, 12)
    removed = _keys(4, 2)
    tombstoned = _apply(store, removed=removed, compact_segments=3)
    assert tombstoned.vector_count == 10 and tombstoned.segments[0].dead == 2
    for first in range(12, 18, 2):
        published = _apply(store, [_shard(store, first, 2)], compact_segments=3)
    assert len(published.segments) == 1
    assert (published.segments[0].count, published.segments[0].dead) == (16, 0)
    snapshot = load_snapshot(store, TAG)
    assert snapshot.vector_count == 16
    found = {hit.key for hit in snapshot.search(unit_vectors(1, DIM, 1), k=50)[0]}
    assert found == set(_keys(0, 18)) - set(removed)


def test_large_segments_are_ivf_with_calibrated_recall(store: ObjectStore):
    vectors_and_queries = unit_vectors(3100, DIM, 3, clusters=40)
    vectors, queries = vectors_and_queries[:3000], vectors_and_queries[3000:]
    keys = _keys(0, 3000)
    published = _apply(store, [write_shard(store, TAG, keys, vectors)], flat_max=500)
    (entry,) = published.segments
    assert entry.kind == "ivf" and entry.factory.startswith("IVF")
    assert entry.params["nprobe"] >= 1
    _, exact = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    hits = load_snapshot(store, TAG).search(queries, k=10)
    position = {key: i for i, key in enumerate(keys)}
    found = np.array([[position[hit.key] for hit in row] for row in hits])
    assert recall_at_k(found, exact) >= 0.95


def test_rebuild_recovers_from_the_shards_alone(store: ObjectStore):
    _apply(store, [_shard(store, 0, 4)])
    _apply(store, [_shard(store, 4, 4)])
    for key in _keys(0, 8):
        store.put(key, b"image")
    store.delete(_keys(2, 1)[0])
    store.delete(manifests.layout.manifest_key(TAG))
    rebuilt = rebuild(store, TAG, flat_max=1000)
    assert (rebuilt.version, rebuilt.vector_count, len(rebuilt.segments)) == (3, 7, 1)
    assert rebuilt.tombstones == {_keys(2, 1)[0]}
    assert load_snapshot(store, TAG).vector_count == 7


def test_a_shard_of_another_dimension_is_refused(store: ObjectStore):
    _apply(store, [_shard(store, 0, 2)])
    other = write_shard(store, TAG, _keys(9, 1), unit_vectors(1, DIM * 2, 0))
    with pytest.raises(update.IndexMismatch, match="dim"):
        _apply(store, [other])


def test_an_image_uploaded_again_after_its_removal_comes_back(store: ObjectStore):
    key = _keys(1, 1)[0]
    _apply(store, [_shard(store, 0, 3)])
    assert _apply(store, removed=[key]).vector_count == 2
    store.put(key, b"uploaded again")
    again = write_shard(store, TAG, [key], unit_vectors(1, DIM, 42))
    published = _apply(store, [again])
    assert (published.vector_count, published.tombstones) == (3, frozenset())

"""Index updates on moto server: dedup, tombstones, compaction, index type by size, rebuild."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from pixsearch.index import compaction, update
from pixsearch.index import manifest as manifests
from pixsearch.index.calibration import recall_at_k
from pixsearch.index.compaction import Limits
from pixsearch.index.reader import load_snapshot
from pixsearch.index.rebuild import rebuild
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
        limits=Limits(flat_max=flat_max, fanout=compact_segments, nlist=16),
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
    assert not _apply(store, [_shard(store, 0, 2)], removed=[key]).tombstones


def test_tiered_compaction_merges_similar_sizes_and_drops_tombstoned_rows(store: ObjectStore):
    for first in range(0, 9, 3):
        published = _apply(store, [_shard(store, first, 3)], compact_segments=3)
    assert [entry.count for entry in published.segments] == [9]  # three of 3 -> one of 9
    published = _apply(store, [_shard(store, 9, 3)], compact_segments=3)
    assert sorted(entry.count for entry in published.segments) == [3, 9]  # sizes differ
    removed = _keys(4, 2)
    tombstoned = _apply(store, removed=removed, compact_segments=3)
    big = next(entry for entry in tombstoned.segments if entry.count == 9)
    assert tombstoned.vector_count == 10 and big.dead == 2
    for first in range(12, 30, 3):
        published = _apply(store, [_shard(store, first, 3)], compact_segments=3)
        tiers = [compaction.tier(entry, 3) for entry in published.segments]
        assert all(tiers.count(t) < 3 for t in tiers)  # no tier is left full
    assert published.vector_count == 28
    merged_dead = [entry.dead for entry in published.segments if entry.count > 9]
    assert merged_dead == [0]  # the merge that took the 9 left its tombstoned rows behind
    found = {hit.key for hit in load_snapshot(store, TAG).search(unit_vectors(1, DIM, 1), k=50)[0]}
    assert found == set(_keys(0, 30)) - set(removed)


def test_merged_segments_turn_ivf_with_calibrated_recall(store: ObjectStore):
    vectors_and_queries = unit_vectors(3100, DIM, 3, clusters=40)
    vectors, queries = vectors_and_queries[:3000], vectors_and_queries[3000:]
    keys = _keys(0, 3000)
    for first in range(0, 3000, 1000):
        shard = write_shard(store, TAG, keys[first : first + 1000], vectors[first : first + 1000])
        published = _apply(store, [shard], flat_max=500, compact_segments=3)
    (entry,) = published.segments
    assert entry.kind == "ivf" and entry.factory == published.quantizer.factory
    assert entry.quantizer == published.quantizer.id
    assert 1 <= entry.params["nprobe"] <= published.quantizer.nlist
    _, exact = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    hits = load_snapshot(store, TAG).search(queries, k=10)
    position = {key: i for i, key in enumerate(keys)}
    found = np.array([[position[hit.key] for hit in row] for row in hits])
    assert recall_at_k(found, exact) >= 0.95
    trained = published.quantizer
    more_keys, more = _keys(5000, 3000), unit_vectors(3000, DIM, 4, clusters=40)
    for first in range(0, 3000, 1000):
        shard = write_shard(store, TAG, more_keys[first : first + 1000], more[first : first + 1000])
        published = _apply(store, [shard], flat_max=500, compact_segments=3)
    assert published.quantizer == trained  # trained once; the second IVF segment reuses it
    assert [entry.quantizer for entry in published.segments] == [trained.id] * 2


def test_rebuild_recovers_from_the_shards_alone(store: ObjectStore):
    _apply(store, [_shard(store, 0, 4)])
    _apply(store, [_shard(store, 4, 4)])
    for key in _keys(0, 8):
        store.put(key, b"image")
    store.delete(_keys(2, 1)[0])
    store.delete(manifests.layout.manifest_key(TAG))
    rebuilt = rebuild(store, TAG, limits=Limits(flat_max=1000, nlist=16))
    assert (rebuilt.version, rebuilt.vector_count, len(rebuilt.segments)) == (3, 7, 1)
    assert set(rebuilt.tombstones) == {_keys(2, 1)[0]}
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
    assert published.vector_count == 3 and not published.tombstones

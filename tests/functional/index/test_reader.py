"""Loading the published index: validation, refusal of damaged versions, recovery."""

from __future__ import annotations

import json

import pytest

from pixsearch import layout
from pixsearch.index import manifest as manifests
from pixsearch.index import update
from pixsearch.index.compaction import Limits
from pixsearch.index.reader import (
    CorruptIndex,
    IndexNotFound,
    load_snapshot,
    manifest_etag,
)
from pixsearch.storage import ObjectStore
from tests.fixtures.model import unit_vectors, write_shard
from tests.fixtures.stores import HookedStore

TAG = "test-model__none"
DIM = 8


def _index(
    store: ObjectStore, first: int, count: int, removed: list[str] = ()
) -> manifests.Manifest:
    keys = [f"images/aa/{n:064x}.png" for n in range(first, first + count)]
    for key in keys:
        store.put(key, b"image")  # recovery checks which images are still there
    shard = write_shard(store, TAG, keys, unit_vectors(count, DIM, first))
    return update.apply(
        store,
        TAG,
        [shard],
        removed,
        limits=Limits(flat_max=1000, nlist=16),
        image_exists=lambda key: store.head(key) is not None,
    )


def test_no_index_yet(store: ObjectStore):
    assert manifest_etag(store, TAG) is None
    with pytest.raises(IndexNotFound, match=TAG):
        load_snapshot(store, TAG)


def test_snapshot_describes_the_current_version(store: ObjectStore):
    _index(store, 0, 4)
    published = _index(store, 4, 3)
    snapshot = load_snapshot(store, TAG)
    assert (snapshot.version, snapshot.vector_count, snapshot.segment_count) == (2, 7, 2)
    assert (snapshot.model_tag, snapshot.dim) == (TAG, DIM)
    assert snapshot.etag == manifest_etag(store, TAG)
    assert published.vector_count == 7
    assert snapshot.search(unit_vectors(2, DIM, 99), k=0) == [[], []]
    with pytest.raises(ValueError, match="dim"):
        snapshot.search(unit_vectors(1, DIM + 1, 0), k=3)


def test_a_new_version_reads_only_the_segments_it_adds(store: ObjectStore):
    first = _index(store, 0, 4)
    before = load_snapshot(store, TAG)
    removed = "images/aa/" + f"{1:064x}.png"
    store.delete(removed)
    second = _index(store, 4, 3, removed=[removed])
    counting = HookedStore(store)
    after = load_snapshot(counting, TAG, previous=before)
    (kept_id,) = {entry.id for entry in first.segments}
    (new_id,) = {entry.id for entry in second.segments} - {kept_id}
    read_segments = {key for key in counting.got if "/segments/" in key}
    assert read_segments == {
        layout.segment_key(TAG, new_id),
        layout.segment_rows_key(TAG, new_id),
        layout.segment_keys_key(TAG, new_id),
    }
    assert (after.version, after.vector_count, after.reused_count) == (2, 6, 1)
    assert after._segments[kept_id].index is before._segments[kept_id].index  # shared
    found = {hit.key for hit in after.search(unit_vectors(1, DIM, 5), k=10)[0]}
    assert removed not in found and len(found) == 6
    assert before.vector_count == 4  # the old snapshot is untouched for requests in flight


def _damage_segment(store: ObjectStore, entry: manifests.SegmentEntry) -> None:
    key = layout.segment_key(TAG, entry.id)
    data = bytearray(store.get(key))
    data[-1] ^= 0xFF
    store.put(key, bytes(data))


def test_a_damaged_segment_at_a_new_version_is_refused(store: ObjectStore):
    _index(store, 0, 4)
    damaged = _index(store, 4, 3)
    _damage_segment(store, damaged.segments[-1])
    with pytest.raises(CorruptIndex, match="checksum"):
        update.segments.load(store, TAG, damaged.segments[-1], DIM)
    snapshot = load_snapshot(store, TAG)
    assert (snapshot.version, snapshot.vector_count) == (1, 4)
    assert snapshot.etag == manifest_etag(store, TAG)  # a poller waits for the next version

    healed = _index(store, 7, 2)  # the next run builds on v1 and brings the lost shard back
    assert (healed.version, healed.vector_count) == (3, 9)
    assert (load_snapshot(store, TAG).version, load_snapshot(store, TAG).vector_count) == (3, 9)


@pytest.mark.parametrize(
    "damage",
    [
        lambda body: body.replace(b'"vector_count": 7', b'"vector_count": 70'),
        lambda body: body[: len(body) // 2],
        lambda body: json.dumps({**json.loads(body), "dim": 9}).encode(),
    ],
    ids=["count", "truncated", "dim-with-stale-checksum"],
)
def test_a_damaged_manifest_at_a_new_version_is_refused(store: ObjectStore, damage):
    _index(store, 0, 4)
    _index(store, 4, 3)
    key = layout.manifest_key(TAG)
    version_3 = store.get(key).replace(b'"version": 2', b'"version": 3')
    store.put(key, damage(version_3))
    with pytest.raises(CorruptIndex):
        manifests.read(store, TAG)
    snapshot = load_snapshot(store, TAG)
    assert (snapshot.version, snapshot.vector_count) == (2, 7)
    healed = _index(store, 7, 1)
    assert (healed.version, healed.vector_count) == (3, 8)
    assert load_snapshot(store, TAG).version == 3


def test_no_valid_version_at_all_is_an_error(store: ObjectStore):
    _index(store, 0, 2)
    store.delete(layout.manifest_version_key(TAG, 1))
    store.put(layout.manifest_key(TAG), b"{}")
    with pytest.raises(CorruptIndex):
        load_snapshot(store, TAG)

"""Index runs that race each other, a rebuild, or a damaged manifest, made deterministic.

Each test lets a competing run publish at the worst moment (through
:class:`~tests.fixtures.stores.HookedStore` or the existence check) and then
checks that no shard, vector or tombstone was lost.
"""

from __future__ import annotations

from pixsearch import layout
from pixsearch.index import manifest as manifests
from pixsearch.index import update
from pixsearch.index.compaction import Limits
from pixsearch.index.reader import load_snapshot
from pixsearch.index.rebuild import rebuild
from pixsearch.shards import Shard
from pixsearch.storage import ObjectStore
from tests.fixtures.model import unit_vectors, write_shard
from tests.fixtures.stores import HookedStore

TAG = "test-model__none"
DIM = 16


def _keys(first: int, count: int) -> list[str]:
    return [f"images/{n:02x}/{n:064x}.png" for n in range(first, first + count)]


def _shard(store: ObjectStore, first: int, count: int, *, upload: bool = True) -> Shard:
    keys = _keys(first, count)
    if upload:
        for key in keys:
            store.put(key, b"image")
    return write_shard(store, TAG, keys, unit_vectors(count, DIM, first))


def _apply(store, shards=(), removed=(), *, compact_segments=8, image_exists=None):
    return update.apply(
        store,
        TAG,
        shards,
        removed,
        limits=Limits(flat_max=1000, fanout=compact_segments, nlist=16),
        image_exists=image_exists or (lambda key: store.head(key) is not None),
    )


def _live(store: ObjectStore) -> set[str]:
    snapshot = load_snapshot(store, TAG)
    return {hit.key for hit in snapshot.search(unit_vectors(1, DIM, 99), k=1000)[0]}


def test_a_run_that_loses_the_ifmatch_race_merges_and_loses_nothing(store: ObjectStore):
    _apply(store, [_shard(store, 0, 3)])
    hooked = HookedStore(store)
    removed = _keys(1, 1)[0]

    def competitor() -> None:
        store.delete(removed)
        _apply(store, [_shard(store, 10, 2)], [removed])

    hooked.before("replace_if_match", layout.MANIFEST_NAME, competitor)
    published = _apply(hooked, [_shard(store, 20, 2)])
    assert hooked.fired  # the competitor did publish in between
    assert published.version == 3  # its v2 lost to the competitor's v2; it merged into v3
    assert removed in published.tombstones
    assert _live(store) == set(_keys(0, 3) + _keys(10, 2) + _keys(20, 2)) - {removed}


def test_rebuild_keeps_what_the_index_stage_published_meanwhile(store: ObjectStore):
    _apply(store, [_shard(store, 0, 4)])
    removed = _keys(2, 1)[0]
    hooked = HookedStore(store)

    def live_index_stage() -> None:  # after rebuild listed shards and images
        store.delete(removed)
        _apply(store, [_shard(store, 10, 3)], [removed])

    hooked.before("put_if_absent", "/segments/", live_index_stage)
    rebuilt = rebuild(hooked, TAG, limits=Limits(flat_max=1000, nlist=16))
    assert hooked.fired
    assert removed in rebuilt.tombstones
    assert rebuilt.vector_count == 6
    assert _live(store) == set(_keys(0, 4) + _keys(10, 3)) - {removed}


def test_recovery_from_a_damaged_manifest_keeps_later_removals(store: ObjectStore):
    _apply(store, [_shard(store, 0, 4)])
    removed = _keys(1, 1)[0]
    store.delete(removed)
    tombstoned = _apply(store, removed=[removed])
    # The current manifest is damaged and its archived copy never made it.
    key = layout.manifest_key(TAG)
    store.put(key, store.get(key)[:40])
    store.delete(layout.manifest_version_key(TAG, tombstoned.version))
    healed = _apply(store, [_shard(store, 10, 2)])
    assert removed in healed.tombstones
    assert _live(store) == set(_keys(0, 4) + _keys(10, 2)) - {removed}


def test_concurrent_runs_in_one_process_share_the_segment_key_cache(store: ObjectStore):
    _apply(store, [_shard(store, 0, 4)], compact_segments=2)  # tiers by log2 of size: 2
    _apply(store, [_shard(store, 4, 2)], compact_segments=2)  # tier 1
    gone = _keys(9, 1)[0]
    _apply(store, removed=[gone], compact_segments=2)
    competitor_ran = []

    def exists(key: str) -> bool:
        if key == gone and not competitor_ran:
            # Another run in this process compacts the segments this run has just read
            # (and evicts their cached keys) while this one is between read and publish.
            competitor_ran.append(_apply(store, [_shard(store, 6, 2)], compact_segments=2))
        return store.head(key) is not None

    late = write_shard(store, TAG, [gone, *_keys(10, 1)], unit_vectors(2, DIM, 7))
    store.put(_keys(10, 1)[0], b"image")
    published = _apply(store, [late], compact_segments=2, image_exists=exists)
    assert len(competitor_ran[0].segments) == 1  # the competitor did compact
    assert gone in published.tombstones
    assert _live(store) == set(_keys(0, 8) + _keys(10, 1))


def test_a_removal_before_any_shard_publishes_an_empty_searchable_index(store: ObjectStore):
    published = _apply(store, removed=[_keys(0, 1)[0]])
    assert (published.dim, published.segments) == (0, ())
    snapshot = load_snapshot(store, TAG)
    assert snapshot.search(unit_vectors(2, DIM, 0), k=5) == [[], []]
    assert set(manifests.read(store, TAG)[0].tombstones) == {_keys(0, 1)[0]}

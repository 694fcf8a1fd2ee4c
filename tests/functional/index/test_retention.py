"""Retention: collection leaves exactly what kept manifests reference; tombstones expire."""

from __future__ import annotations

import pytest

from pixsearch import layout
from pixsearch.config import Settings
from pixsearch.index import folded, retention, update
from pixsearch.index import manifest as manifests
from pixsearch.index.compaction import Limits
from pixsearch.index.reader import _load_parts, load_snapshot
from pixsearch.storage import ObjectStore
from tests.fixtures.model import unit_vectors, write_shard

TAG = "test-model__none"
DIM = 8


def _keys(first: int, count: int) -> list[str]:
    return [f"images/{n:02x}/{n:064x}.png" for n in range(first, first + count)]


def _apply(store: ObjectStore, first: int, count: int, removed=(), grace_s: float = 3600):
    keys = _keys(first, count)
    for key in keys:
        store.put(key, b"image")
    for key in removed:
        store.delete(key)
    shard = write_shard(store, TAG, keys, unit_vectors(count, DIM, first)) if count else None
    return update.apply(
        store,
        TAG,
        [shard] if shard else [],
        removed,
        limits=Limits(flat_max=1000, fanout=2, nlist=8, grace_s=grace_s),
        image_exists=lambda key: store.head(key) is not None,
    )


def _collected(store: ObjectStore) -> set[str]:
    prefix = layout.index_prefix(TAG)
    return {
        info.key
        for info in store.list(prefix)
        if info.key.removeprefix(prefix).startswith(retention.COLLECTED)
    }


def test_collection_leaves_only_what_kept_manifests_reference(store: ObjectStore):
    runs = manifests.RECOVERY_DEPTH + 6
    for first in range(0, 3 * runs, 3):
        published = _apply(store, first, 3)
    before = _collected(store)
    assert retention.plan(store, TAG, grace_s=3600).garbage == ()  # all young yet
    found = retention.collect(store, TAG, grace_s=0)
    assert found.garbage and {info.key for info in found.garbage} <= before
    kept_versions = manifests.archived_versions(store, TAG)
    assert len(kept_versions) == manifests.RECOVERY_DEPTH
    kept = [manifests.read_version(store, TAG, version) for version in kept_versions]
    referenced = set().union(*(retention.referenced_keys(manifest) for manifest in kept))
    assert _collected(store) == referenced
    for manifest in kept:  # every kept version still loads: recovery is intact
        assert _load_parts(store, manifest, {})
    snapshot = load_snapshot(store, TAG)
    assert snapshot.version == published.version
    assert snapshot.vector_count == published.vector_count == 3 * runs
    assert retention.collect(store, TAG, grace_s=0).garbage == ()


def test_nothing_is_collected_while_the_current_manifest_is_damaged(store: ObjectStore):
    for first in range(0, 12, 3):
        _apply(store, first, 3)
    store.put(layout.manifest_key(TAG), b"{}")
    with pytest.raises(manifests.CorruptIndex):
        retention.plan(store, TAG, grace_s=0)


def test_tombstones_leave_once_no_segment_holds_their_rows(store: ObjectStore):
    _apply(store, 0, 4, grace_s=0)
    removed = _keys(1, 1)[0]
    held = _apply(store, 0, 0, removed=[removed], grace_s=0)
    assert removed in held.tombstones  # its row is still in a segment (marked dead)
    merged = _apply(store, 4, 3, grace_s=0)  # live 3 and 3: one tier, so they merge
    assert len(merged.segments) == 1 and merged.segments[0].dead == 0
    assert removed not in merged.tombstones
    assert merged.vector_count == 6


def test_folded_shard_ids_move_out_of_the_manifest(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(folded, "INLINE_MAX", 2)
    shards = []
    for first in range(0, 12, 3):
        keys = _keys(first, 3)
        shards.append(write_shard(store, TAG, keys, unit_vectors(3, DIM, first)))
        published = update.apply(
            store,
            TAG,
            [shards[-1]],
            [],
            limits=Limits(flat_max=1000, nlist=8),
            image_exists=lambda key: True,
        )
    assert published.shard_set is not None and len(published.shards) <= 2
    assert folded.folded_ids(store, published) == {shard.shard_id for shard in shards}
    replayed = update.apply(
        store, TAG, shards[:1], [], limits=Limits(flat_max=1000, nlist=8), image_exists=bool
    )
    assert replayed == published


def test_gc_command_dry_run_deletes_nothing(
    store: ObjectStore, settings: Settings, capsys: pytest.CaptureFixture[str]
):
    for first in range(0, 3 * (manifests.RECOVERY_DEPTH + 4), 3):
        _apply(store, first, 3)
    before = _collected(store)
    dry = Settings(**{**settings.model_dump(), "index_grace_s": 0})
    assert retention.command(TAG, True, dry) == 0
    out = capsys.readouterr().out
    assert "would delete" in out and "would free" in out
    assert _collected(store) == before

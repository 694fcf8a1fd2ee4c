"""Folding new shards and image removals into the index: one optimistic transaction.

Each attempt reads the manifest, builds a segment from the shards it does not
list yet (skipping keys already live, so a redelivered image is never a second
vector), adds tombstones, compacts when there are too many segments, and
publishes with ``IfMatch``. On a conflict it starts again from the manifest
that won, so concurrent runs neither count a shard twice nor drop one.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np

from pixsearch import layout
from pixsearch.embed import shard as shards
from pixsearch.embed.shard import Shard
from pixsearch.index import manifest as manifests
from pixsearch.index import segment as segments
from pixsearch.index.manifest import CorruptIndex, Manifest, SegmentEntry
from pixsearch.storage import ConflictError, ObjectStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
RECOVERY_DEPTH = 10

_segment_keys: dict[tuple[str, str, str], frozenset[str]] = {}
"""Keys of each (immutable) segment, kept across warm invocations. Filled only by
loading the segment back (checksums verified), never from what this process built."""


class IndexMismatch(ValueError):
    """A shard that cannot join this index (another dimension)."""


def apply(
    store: ObjectStore,
    model_tag: str,
    shards: Iterable[Shard],
    removed_keys: Iterable[str],
    *,
    flat_max: int,
    compact_segments: int,
    image_exists: Callable[[str], bool],
) -> Manifest:
    """Publish a manifest that includes ``shards`` and tombstones ``removed_keys``."""
    new = {shard.shard_id: shard for shard in shards}
    removals = {key for key in removed_keys if not image_exists(key)}
    exists_now: dict[str, bool] = {}

    def still_exists(key: str) -> bool:
        if key not in exists_now:
            exists_now[key] = image_exists(key)
        return exists_now[key]

    for attempt in range(MAX_ATTEMPTS):
        current, etag, version, healing = _read_or_recover(store, model_tag)
        if healing:
            new.update(_unlisted_shards(store, model_tag, current, new))
        pending = [
            shard for shard_id, shard in sorted(new.items()) if shard_id not in current.shards
        ]
        for shard in pending:
            if current.dim and shard.dim != current.dim:
                raise IndexMismatch(
                    f"shard {shard.shard_id} has dim {shard.dim}, the index has {current.dim}"
                )
        tombstones = set(current.tombstones | removals)
        if not pending and tombstones == current.tombstones and not healing:
            return current
        live = _live_keys(store, model_tag, current)
        fresh = _fresh_rows(pending, live, tombstones, still_exists)
        entries = [
            _with_dead(store.bucket, model_tag, entry, tombstones) for entry in current.segments
        ]
        if fresh is not None:
            built, index_bytes, rows_bytes = segments.build(*fresh, flat_max)
            segments.save(store, model_tag, built.entry, index_bytes, rows_bytes)
            entries.append(built.entry)
        if len(entries) > compact_segments:
            entries = compact(
                store,
                model_tag,
                entries,
                dim=current.dim or pending[0].dim,
                flat_max=flat_max,
                tombstones=tombstones,
            )
        candidate = replace(
            current,
            version=version + 1,
            dim=current.dim or (pending[0].dim if pending else 0),
            segments=tuple(entries),
            shards=current.shards | {shard.shard_id for shard in pending},
            tombstones=frozenset(tombstones),
        )
        try:
            manifests.publish(store, candidate, etag)
        except ConflictError:
            log.info("manifest %s changed under us (attempt %d); merging again", model_tag, attempt)
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
            continue
        _forget_other_segments(store, candidate)
        log.info(
            "published %s v%d: %d vectors in %d segments (+%d shards, %d tombstones)",
            model_tag,
            candidate.version,
            candidate.vector_count,
            len(candidate.segments),
            len(pending),
            len(candidate.tombstones),
        )
        return candidate
    raise RuntimeError(f"could not publish the {model_tag} manifest after {MAX_ATTEMPTS} attempts")


def compact(
    store: ObjectStore,
    model_tag: str,
    entries: list[SegmentEntry],
    *,
    dim: int,
    flat_max: int,
    tombstones: set[str],
) -> list[SegmentEntry]:
    """Merge ``entries`` into one segment without tombstoned rows (none if nothing is live)."""
    parts_vectors: list[np.ndarray] = []
    parts_rows: list[segments.Rows] = []
    for entry in entries:
        loaded = segments.load(store, model_tag, entry, dim)
        keep = [i for i, key in enumerate(loaded.rows.keys) if key not in tombstones]
        parts_vectors.append(loaded.vectors()[keep])
        parts_rows.append(loaded.rows.take(keep))
    rows = segments.Rows.concat(parts_rows)
    if not len(rows):
        return []
    built, index_bytes, rows_bytes = segments.build(np.concatenate(parts_vectors), rows, flat_max)
    segments.save(store, model_tag, built.entry, index_bytes, rows_bytes)
    log.info("compacted %d segments of %s into %s", len(entries), model_tag, built.entry.id)
    return [built.entry]


def _with_dead(
    bucket: str, model_tag: str, entry: SegmentEntry, tombstones: set[str]
) -> SegmentEntry:
    return replace(entry, dead=len(_segment_keys[(bucket, model_tag, entry.id)] & tombstones))


def _fresh_rows(
    pending: list[Shard],
    live: _Present,
    tombstones: set[str],
    still_exists: Callable[[str], bool],
) -> tuple[np.ndarray, segments.Rows] | None:
    """The rows of ``pending`` shards that are neither live already nor deleted."""
    vectors: list[np.ndarray] = []
    chosen: list[shards.ShardRow] = []
    taken: set[str] = set()
    for shard in pending:
        for position, row in enumerate(shard.rows):
            if row.key in taken:
                continue
            if row.key in tombstones:
                if not still_exists(row.key):
                    continue
                tombstones.discard(row.key)  # re-uploaded since its removal: live again
            if row.key in live:
                continue
            taken.add(row.key)
            vectors.append(shard.vectors[position])
            chosen.append(row)
    if not chosen:
        return None
    return np.stack(vectors), segments.Rows.from_shard_rows(chosen)


def _unlisted_shards(
    store: ObjectStore, model_tag: str, base: Manifest, known: dict[str, Shard]
) -> dict[str, Shard]:
    """Shards in the bucket that ``base`` does not list: a damaged newer version may have."""
    prefix = layout.embeddings_prefix(model_tag)
    found = {}
    for info in store.list(prefix):
        if not info.key.endswith(layout.SHARD_SUFFIX):
            continue
        shard_id = layout.parse_shard_key(info.key)[1]
        if shard_id not in base.shards and shard_id not in known:
            found[shard_id] = shards.read(store, model_tag, shard_id)
    return found


class _Present:
    """Keys in the current segments, dead or not (a dead row revives if un-tombstoned).

    Asks each segment's cached key set in turn rather than merging them, so a run
    costs the same whatever the size of the index.
    """

    def __init__(self, key_sets: list[frozenset[str]]) -> None:
        self.key_sets = key_sets

    def __contains__(self, key: object) -> bool:
        return any(key in keys for keys in self.key_sets)


def _live_keys(store: ObjectStore, model_tag: str, current: Manifest) -> _Present:
    return _Present([_keys_of(store, model_tag, entry, current.dim) for entry in current.segments])


def _keys_of(store: ObjectStore, model_tag: str, entry: SegmentEntry, dim: int) -> frozenset[str]:
    cache_key = (store.bucket, model_tag, entry.id)
    if cache_key not in _segment_keys:
        _segment_keys[cache_key] = frozenset(segments.load(store, model_tag, entry, dim).rows.keys)
    return _segment_keys[cache_key]


def _forget_other_segments(store: ObjectStore, current: Manifest) -> None:
    index = (store.bucket, current.model_tag)
    live = {entry.id for entry in current.segments}
    for cache_key in [k for k in _segment_keys if k[:2] == index and k[2] not in live]:
        del _segment_keys[cache_key]


def _read_or_recover(store: ObjectStore, model_tag: str) -> tuple[Manifest, str | None, int, bool]:
    """The manifest to build on, the ETag to replace, the version to publish after, and
    whether the current manifest is damaged (then the newest archived version that
    validates is the base, the shards it lacks are added back, and publishing heals
    the index).
    """
    try:
        current, etag = manifests.read(store, model_tag)
        for entry in current.segments:
            _keys_of(store, model_tag, entry, current.dim)
        return current, etag, current.version, False
    except CorruptIndex as error:
        log.error("index %s: current manifest refused (%s); recovering", model_tag, error)
        info = store.head(layout.manifest_key(model_tag))
        etag = info.etag if info else None
    versions = manifests.archived_versions(store, model_tag)
    newest = versions[0] if versions else 0
    for version in versions[:RECOVERY_DEPTH]:
        try:
            base = manifests.read_version(store, model_tag, version)
            for entry in base.segments:
                _keys_of(store, model_tag, entry, base.dim)
        except (CorruptIndex, KeyError) as error:
            log.error("index %s: archived v%d refused too (%s)", model_tag, version, error)
            continue
        return base, etag, newest, True
    raise CorruptIndex(f"index {model_tag}: no valid manifest among the last {RECOVERY_DEPTH}")

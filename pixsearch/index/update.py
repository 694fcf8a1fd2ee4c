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
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np

from pixsearch import layout, shards
from pixsearch.index import manifest as manifests
from pixsearch.index import segment as segments
from pixsearch.index.manifest import Manifest, SegmentEntry
from pixsearch.shards import Shard
from pixsearch.storage import ConflictError, ObjectStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20


class SegmentKeys:
    """The image keys of each (immutable) segment, kept across warm invocations.

    Filled only by loading a segment back (checksums verified), never from what this
    process built. Safe for concurrent index runs in one process: a run that finds a
    key set evicted by another run's :meth:`retain` loads it again.
    """

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, str], frozenset[str]] = {}
        self._lock = threading.Lock()

    def get(
        self, store: ObjectStore, model_tag: str, entry: SegmentEntry, dim: int
    ) -> frozenset[str]:
        cache_key = (store.bucket, model_tag, entry.id)
        with self._lock:
            keys = self._keys.get(cache_key)
        if keys is None:
            keys = frozenset(segments.load(store, model_tag, entry, dim).rows.keys)
            with self._lock:
                self._keys[cache_key] = keys
        return keys

    def retain(self, store: ObjectStore, manifest: Manifest) -> None:
        """Forget the segments of this index that ``manifest`` no longer lists."""
        index = (store.bucket, manifest.model_tag)
        live = {entry.id for entry in manifest.segments}
        with self._lock:
            for cache_key in [k for k in self._keys if k[:2] == index and k[2] not in live]:
                del self._keys[cache_key]


segment_keys = SegmentKeys()


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
        newest = read_base(store, model_tag)
        current, etag, version = newest.manifest, newest.etag, newest.last_version
        present = _Present(newest.loaded)
        healing = newest.refused is not None
        if healing:
            new.update(_unlisted_shards(store, model_tag, current, new))
            removals |= _gone(store, present, new.values())
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
        fresh = _fresh_rows(pending, present, tombstones, still_exists)
        entries = [
            replace(entry, dead=len(keys & tombstones))
            for entry, keys in zip(current.segments, newest.loaded, strict=True)
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
        segment_keys.retain(store, candidate)
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


def _fresh_rows(
    pending: list[Shard],
    live: _Present,
    tombstones: set[str],
    still_exists: Callable[[str], bool],
) -> tuple[np.ndarray, segments.Rows] | None:
    """The rows of ``pending`` shards that are neither live already nor deleted."""
    vectors: list[np.ndarray] = []
    keys: list[str] = []
    urls: list[str | None] = []
    widths: list[int] = []
    heights: list[int] = []
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
            keys.append(row.key)
            urls.append(row.source_url)
            widths.append(row.width)
            heights.append(row.height)
    if not keys:
        return None
    return np.stack(vectors), segments.Rows(keys, urls, widths, heights)


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


def read_base(store: ObjectStore, model_tag: str) -> manifests.Newest[list[frozenset[str]]]:
    """The newest valid manifest to build on, with the key set of each of its segments."""
    return manifests.read_newest_valid(
        store,
        model_tag,
        lambda manifest: [
            segment_keys.get(store, model_tag, entry, manifest.dim) for entry in manifest.segments
        ],
    )


def _gone(store: ObjectStore, present: _Present, recovered: Iterable[Shard]) -> set[str]:
    """Indexed or recovered keys whose image is no longer in the bucket.

    Only when healing from an archived version: removals published after it were lost
    with the damaged manifest. One listing of ``images/`` finds them all.
    """
    candidates = set().union(*present.key_sets, *({row.key for row in s.rows} for s in recovered))
    for info in store.list(layout.IMAGES):
        candidates.discard(info.key)
    return candidates

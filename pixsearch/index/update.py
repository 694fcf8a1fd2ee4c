"""Folding new shards and image removals into the index: one optimistic transaction.

Each attempt reads the newest valid manifest, builds a flat segment from the shards
it has not folded in yet (skipping keys already present, so a redelivered image is
never a second vector), adds tombstones, runs tiered compaction while the run's time
and memory allow, drops tombstones no segment holds any more (after the grace
period), and publishes with ``IfMatch``. On a conflict it starts again from the
manifest that won, so concurrent runs neither count a shard twice nor drop one.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np

from pixsearch import layout
from pixsearch import shards as shard_files
from pixsearch.index import compaction, folded
from pixsearch.index import manifest as manifests
from pixsearch.index import segment as segments
from pixsearch.index.compaction import Limits
from pixsearch.index.manifest import Manifest, SegmentEntry
from pixsearch.shards import Shard
from pixsearch.storage import ConflictError, ObjectStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
MERGE_TIME_SHARE = 0.5  # no merge starts once this share of the run's time is spent


class IndexMismatch(ValueError):
    """A shard that cannot join this index (another dimension)."""


class SegmentKeys:
    """The key hashes of each (immutable) segment, kept across warm invocations.

    Filled only by reading them back (checksum verified), never from what this process
    built. Safe for concurrent index runs in one process: a run that finds an entry
    evicted by another run's :meth:`retain` reads it again.
    """

    def __init__(self) -> None:
        self._hashes: dict[tuple[str, str, str], np.ndarray] = {}
        self._lock = threading.Lock()

    def get(self, store: ObjectStore, model_tag: str, entry: SegmentEntry) -> np.ndarray:
        cache_key = (store.bucket, model_tag, entry.id)
        with self._lock:
            hashes = self._hashes.get(cache_key)
        if hashes is None:
            segments.check_unchanged(store, model_tag, entry)
            hashes = np.sort(segments.load_hashes(store, model_tag, entry))
            with self._lock:
                self._hashes[cache_key] = hashes
        return hashes

    def retain(self, store: ObjectStore, manifest: Manifest) -> None:
        """Forget the segments of this index that ``manifest`` no longer lists."""
        index = (store.bucket, manifest.model_tag)
        live = {entry.id for entry in manifest.segments}
        with self._lock:
            for cache_key in [k for k in self._hashes if k[:2] == index and k[2] not in live]:
                del self._hashes[cache_key]


segment_keys = SegmentKeys()


def apply(
    store: ObjectStore,
    model_tag: str,
    shards: Iterable[Shard],
    removed_keys: Iterable[str],
    *,
    limits: Limits,
    image_exists: Callable[[str], bool],
    clock: Callable[[], float] = time.time,
) -> Manifest:
    """Publish a manifest that includes ``shards`` and tombstones ``removed_keys``."""
    started = time.monotonic()
    new = {shard.shard_id: shard for shard in shards}
    removals = {key for key in removed_keys if not image_exists(key)}
    exists_now: dict[str, bool] = {}

    def still_exists(key: str) -> bool:
        if key not in exists_now:
            exists_now[key] = image_exists(key)
        return exists_now[key]

    def may_merge() -> bool:
        return time.monotonic() - started < limits.time_s * MERGE_TIME_SHARE

    for attempt in range(MAX_ATTEMPTS):
        now = clock()
        newest = read_base(store, model_tag)
        current, present = newest.manifest, newest.loaded
        healing = newest.refused is not None
        if healing:
            new.update(_unlisted_shards(store, model_tag, current, new))
            removals |= _gone(store, model_tag, current, new.values())
        done = folded.folded_ids(store, current)
        pending = [shard for shard_id, shard in sorted(new.items()) if shard_id not in done]
        dim = current.dim or (pending[0].dim if pending else 0)
        for shard in pending:
            if shard.dim != dim:
                raise IndexMismatch(
                    f"shard {shard.shard_id} has dim {shard.dim}, the index has {dim}"
                )
        tombstones = dict(current.tombstones)
        for key in removals:
            tombstones.setdefault(key, now)
        fresh = _fresh_rows(pending, present, tombstones, still_exists)
        tombstone_hashes = segments.key_hashes(tombstones)
        entries = [
            replace(entry, dead=int(np.isin(hashes, tombstone_hashes).sum()))
            for entry, hashes in zip(current.segments, present, strict=True)
        ]
        hashes_of = {entry.id: hashes for entry, hashes in zip(entries, present, strict=True)}
        if fresh is not None:
            built = segments.build_flat(*fresh)
            entries.append(segments.save(store, model_tag, built))
            hashes_of[built.entry.id] = np.sort(built.segment.hashes)
        quantizer = current.quantizer
        while may_merge() and (group := compaction.plan(entries, limits)) is not None:
            merged, quantizer = compaction.merge(
                store,
                model_tag,
                group,
                dim=dim,
                tombstone_hashes=tombstone_hashes,
                quantizer=quantizer,
                limits=limits,
            )
            entries = [entry for entry in entries if entry not in group]
            if merged is not None:
                entries.append(merged)
                hashes_of[merged.id] = np.sort(segments.load_hashes(store, model_tag, merged))
        tombstones = _unexpired(tombstones, [hashes_of[e.id] for e in entries], now, limits)
        inline, shard_set = folded.with_shards(
            store, current, {shard.shard_id for shard in pending}
        )
        candidate = replace(
            current,
            version=newest.last_version + 1,
            dim=dim,
            segments=tuple(entries),
            shards=inline,
            shard_set=shard_set,
            tombstones=tombstones,
            quantizer=quantizer,
        )
        if _same_content(candidate, current) and not healing:
            return current
        try:
            manifests.publish(store, candidate, newest.etag)
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


def read_base(store: ObjectStore, model_tag: str) -> manifests.Newest[list[np.ndarray]]:
    """The newest valid manifest to build on, with the sorted key hashes of its segments."""
    return manifests.read_newest_valid(
        store,
        model_tag,
        lambda manifest: [segment_keys.get(store, model_tag, e) for e in manifest.segments],
    )


def _same_content(candidate: Manifest, current: Manifest) -> bool:
    return replace(candidate, version=current.version) == current


def _unexpired(
    tombstones: dict[str, float], segment_hashes: list[np.ndarray], now: float, limits: Limits
) -> dict[str, float]:
    """Tombstones still needed: a segment holds the key, or the grace period is not over
    (a shard written before the removal may still be on its way)."""
    old = [key for key, at in tombstones.items() if now - at >= limits.grace_s]
    if not old:
        return tombstones
    hashes = segments.key_hashes(old)
    held = np.zeros(len(old), dtype=bool)
    for present in segment_hashes:
        held |= _contains(present, hashes)
    drop = {key for key, keep in zip(old, held, strict=True) if not keep}
    return {key: at for key, at in tombstones.items() if key not in drop}


def _contains(sorted_hashes: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    if not len(sorted_hashes):
        return np.zeros(len(hashes), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_hashes, hashes), len(sorted_hashes) - 1)
    return sorted_hashes[at] == hashes


def _fresh_rows(
    pending: list[Shard],
    present: list[np.ndarray],
    tombstones: dict[str, float],
    still_exists: Callable[[str], bool],
) -> tuple[np.ndarray, segments.Rows] | None:
    """The rows of ``pending`` shards that are neither present already nor deleted.

    A tombstoned key whose image exists again (re-uploaded since its removal) is live
    again: its tombstone goes.
    """
    rows = [(shard, position, row) for shard in pending for position, row in enumerate(shard.rows)]
    if not rows:
        return None
    hashes = segments.key_hashes(row.key for _, _, row in rows)
    indexed = np.zeros(len(rows), dtype=bool)
    for sorted_hashes in present:
        indexed |= _contains(sorted_hashes, hashes)
    vectors: list[np.ndarray] = []
    keys: list[str] = []
    urls: list[str | None] = []
    widths: list[int] = []
    heights: list[int] = []
    taken: set[str] = set()
    for (shard, position, row), is_indexed in zip(rows, indexed, strict=True):
        if row.key in taken:
            continue
        if row.key in tombstones:
            if not still_exists(row.key):
                continue
            del tombstones[row.key]  # re-uploaded since its removal: live again
        if is_indexed:
            continue
        taken.add(row.key)
        vectors.append(shard.vectors[position])
        keys.append(row.key)
        urls.append(row.source_url)
        widths.append(row.width)
        heights.append(row.height)
    if not keys:
        return None
    return np.stack(vectors), segments.Rows.of(keys, urls, widths, heights)


def _unlisted_shards(
    store: ObjectStore, model_tag: str, base: Manifest, known: dict[str, Shard]
) -> dict[str, Shard]:
    """Shards in the bucket that ``base`` does not list: a damaged newer version may have."""
    done = folded.folded_ids(store, base)
    found = {}
    for info in store.list(layout.embeddings_prefix(model_tag)):
        if not info.key.endswith(layout.SHARD_SUFFIX):
            continue
        shard_id = layout.parse_shard_key(info.key)[1]
        if shard_id not in done and shard_id not in known:
            found[shard_id] = shard_files.read(store, model_tag, shard_id)
    return found


def _gone(
    store: ObjectStore, model_tag: str, base: Manifest, recovered: Iterable[Shard]
) -> set[str]:
    """Indexed or recovered keys whose image is no longer in the bucket.

    Only when healing from an archived version: removals published after it were lost
    with the damaged manifest. One listing of ``images/`` finds them all.
    """
    listed = {info.key for info in store.list(layout.IMAGES)}
    gone = {row.key for shard in recovered for row in shard.rows if row.key not in listed}
    for entry in base.segments:
        gone |= set(segments.load_rows(store, model_tag, entry).keys) - listed
    return gone

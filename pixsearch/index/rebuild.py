"""``pixsearch index rebuild``: a fresh index from every shard of a model tag.

For disaster recovery (a lost or damaged index) or after a model change: the
shards are the source of truth. Images no longer in the bucket are left out
and tombstoned (so a late event cannot bring them back); the result is
published as the next version over whatever is current.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from pixsearch import layout, shards
from pixsearch.config import Settings
from pixsearch.index import manifest as manifests
from pixsearch.index import segment as segments
from pixsearch.index.manifest import Manifest
from pixsearch.index.update import segment_keys
from pixsearch.storage import ConflictError, ObjectStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


def rebuild(store: ObjectStore, model_tag: str, *, flat_max: int) -> Manifest:
    """Build one segment from all shards of ``model_tag`` and publish it as the next version.

    The index stage may publish while this runs: every attempt to publish merges in what
    the newest manifest has and the rebuild lacks (shards folded meanwhile, tombstones).
    """
    listed = sorted(
        layout.parse_shard_key(info.key)[1]
        for info in store.list(layout.embeddings_prefix(model_tag))
        if info.key.endswith(layout.SHARD_SUFFIX)
    )
    existing = {info.key for info in store.list(layout.IMAGES)}
    vectors: list[np.ndarray] = []
    parts: list[segments.Rows] = []
    seen: set[str] = set()
    gone: set[str] = set()
    dim = 0
    for shard_id in listed:
        shard = shards.read(store, model_tag, shard_id)
        dim = dim or shard.dim
        keep = []
        for position, row in enumerate(shard.rows):
            if row.key not in existing:
                gone.add(row.key)
            elif row.key not in seen:
                seen.add(row.key)
                keep.append(position)
        if keep:
            vectors.append(shard.vectors[keep])
            parts.append(_rows(shard, keep))
    base: tuple[manifests.SegmentEntry, ...] = ()
    if vectors:
        built, index_bytes, rows_bytes = segments.build(
            np.concatenate(vectors), segments.Rows.concat(parts), flat_max
        )
        segments.save(store, model_tag, built.entry, index_bytes, rows_bytes)
        base = (built.entry,)
    late: dict[str, shards.Shard] = {}
    for _ in range(MAX_ATTEMPTS):
        newest = manifests.read_newest_valid(store, model_tag, lambda manifest: None)
        current = newest.manifest
        tombstones = gone | current.tombstones
        for shard_id in sorted(current.shards - set(listed) - late.keys()):
            late[shard_id] = shards.read(store, model_tag, shard_id)
        entries = base + _late_segment(store, model_tag, late.values(), seen, tombstones, flat_max)
        rebuilt = Manifest(
            model_tag=model_tag,
            dim=dim or current.dim,
            version=newest.last_version + 1,
            segments=tuple(
                replace(entry, dead=_dead(store, model_tag, entry, dim, tombstones))
                for entry in entries
            ),
            shards=frozenset(listed) | late.keys(),
            tombstones=frozenset(tombstones),
        )
        try:
            manifests.publish(store, rebuilt, newest.etag)
        except ConflictError:
            continue
        log.info("rebuilt %s v%d: %d vectors", model_tag, rebuilt.version, rebuilt.vector_count)
        return rebuilt
    raise RuntimeError(f"could not publish the rebuilt {model_tag} index: it kept changing")


def _rows(shard: shards.Shard, positions: list[int]) -> segments.Rows:
    return segments.Rows(
        [shard.rows[i].key for i in positions],
        [shard.rows[i].source_url for i in positions],
        [shard.rows[i].width for i in positions],
        [shard.rows[i].height for i in positions],
    )


def _late_segment(
    store: ObjectStore,
    model_tag: str,
    late: Iterable[shards.Shard],
    seen: set[str],
    tombstones: set[str],
    flat_max: int,
) -> tuple[manifests.SegmentEntry, ...]:
    """A segment of the rows that shards folded in during the rebuild add (none if none)."""
    vectors: list[np.ndarray] = []
    parts: list[segments.Rows] = []
    taken = set(seen)
    for shard in late:
        keep = []
        for position, row in enumerate(shard.rows):
            if row.key not in taken and row.key not in tombstones:
                taken.add(row.key)
                keep.append(position)
        if keep:
            vectors.append(shard.vectors[keep])
            parts.append(_rows(shard, keep))
    if not vectors:
        return ()
    built, index_bytes, rows_bytes = segments.build(
        np.concatenate(vectors), segments.Rows.concat(parts), flat_max
    )
    segments.save(store, model_tag, built.entry, index_bytes, rows_bytes)
    return (built.entry,)


def _dead(
    store: ObjectStore, model_tag: str, entry: manifests.SegmentEntry, dim: int, tombstones: set
) -> int:
    return len(segment_keys.get(store, model_tag, entry, dim) & tombstones)


def command(model_tag: str | None, settings: Settings) -> int:
    """``pixsearch index rebuild``: rebuild, then print one line saying what is live now."""
    tag = model_tag or settings.model_tag
    rebuilt = rebuild(ObjectStore.from_settings(settings), tag, flat_max=settings.index_flat_max)
    kinds = ", ".join(f"{entry.kind} ({entry.count})" for entry in rebuilt.segments) or "empty"
    print(
        f"rebuilt index {tag} as version {rebuilt.version}: {rebuilt.vector_count} vectors "
        f"from {len(rebuilt.shards)} shards; segments: {kinds}"
    )
    return 0

"""``pixsearch index rebuild``: a fresh index from every shard of a model tag.

For disaster recovery (a lost or damaged index) or after a model change: the
shards are the source of truth. Images no longer in the bucket are left out
and tombstoned (so a late event cannot bring them back); the result is
published as the next version over whatever is current. Shards are streamed:
segments are cut every ``merge_bytes_max`` worth of vectors, so memory stays
bounded by the same limit as an index run (plus one key per image).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from pixsearch import layout, shards
from pixsearch.config import Settings
from pixsearch.index import folded
from pixsearch.index import manifest as manifests
from pixsearch.index import quantizer as quantizers
from pixsearch.index import segment as segments
from pixsearch.index.compaction import Limits
from pixsearch.index.manifest import CorruptIndex, Manifest, QuantizerEntry, SegmentEntry
from pixsearch.storage import ConflictError, ObjectStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


def rebuild(store: ObjectStore, model_tag: str, *, limits: Limits) -> Manifest:
    """Build segments from all shards of ``model_tag`` and publish them as the next version.

    The index stage may publish while this runs: every attempt to publish merges in what
    the newest manifest has and the rebuild lacks (shards folded meanwhile, tombstones).
    """
    listed = sorted(
        layout.parse_shard_key(info.key)[1]
        for info in store.list(layout.embeddings_prefix(model_tag))
        if info.key.endswith(layout.SHARD_SUFFIX)
    )
    existing = {info.key for info in store.list(layout.IMAGES)}
    seen: set[str] = set()
    gone: set[str] = set()
    builder = _Builder(store, model_tag, limits)
    for shard_id in listed:
        shard = shards.read(store, model_tag, shard_id)
        keep = []
        for position, row in enumerate(shard.rows):
            if row.key not in existing:
                gone.add(row.key)
            elif row.key not in seen:
                seen.add(row.key)
                keep.append(position)
        builder.add(shard, keep)
    base = builder.finish()
    late: dict[str, shards.Shard] = {}
    for _ in range(MAX_ATTEMPTS):
        current, etag, last_version = _current(store, model_tag)
        now = time.time()
        tombstones = {key: current.tombstones.get(key, now) for key in gone}
        tombstones.update(current.tombstones)
        for shard_id in sorted(folded.folded_ids(store, current) - set(listed) - late.keys()):
            late[shard_id] = shards.read(store, model_tag, shard_id)
        extra = _late_segment(store, model_tag, late.values(), seen, tombstones, limits.flat_max)
        entries = base + extra
        hashes = segments.key_hashes(tombstones)
        dim = builder.dim or current.dim
        rebuilt = Manifest(
            model_tag=model_tag,
            dim=dim,
            version=last_version + 1,
            segments=tuple(_with_dead(store, model_tag, entry, hashes) for entry in entries),
            tombstones=tombstones,
            quantizer=builder.quantizer,
        )
        inline, shard_set = folded.with_shards(store, rebuilt, set(listed) | late.keys())
        rebuilt = replace(rebuilt, shards=inline, shard_set=shard_set)
        try:
            manifests.publish(store, rebuilt, etag)
        except ConflictError:
            continue
        log.info("rebuilt %s v%d: %d vectors", model_tag, rebuilt.version, rebuilt.vector_count)
        return rebuilt
    raise RuntimeError(f"could not publish the rebuilt {model_tag} index: it kept changing")


class _Builder:
    """Cuts the kept rows into segments of bounded size; IVF past ``flat_max`` rows."""

    def __init__(self, store: ObjectStore, model_tag: str, limits: Limits) -> None:
        self.store, self.model_tag, self.limits = store, model_tag, limits
        self.dim = 0
        self.quantizer: QuantizerEntry | None = None
        self._template: quantizers.Template | None = None
        self._vectors: list[np.ndarray] = []
        self._rows: list[segments.Rows] = []
        self._pending = 0
        self._entries: list[SegmentEntry] = []

    def add(self, shard: shards.Shard, keep: list[int]) -> None:
        self.dim = self.dim or shard.dim
        if not keep:
            return
        self._vectors.append(shard.vectors[keep])
        self._rows.append(_rows(shard, keep))
        self._pending += len(keep)
        if self._pending * self.dim * 4 * 2 >= self.limits.merge_bytes_max:
            self._cut()

    def finish(self) -> tuple[SegmentEntry, ...]:
        if self._pending:
            self._cut()
        return tuple(self._entries)

    def _cut(self) -> None:
        vectors = np.concatenate(self._vectors)
        rows = segments.Rows.concat(self._rows)
        self._vectors, self._rows, self._pending = [], [], 0
        if len(vectors) <= self.limits.flat_max and self._template is None:
            built = segments.build_flat(vectors, rows)
        else:
            if self._template is None:
                self._template, data = quantizers.train(vectors, self.limits.nlist)
                self.quantizer = self._template[0]
                quantizers.save(self.store, self.model_tag, self.quantizer, data)
            built = segments.build_ivf(vectors, rows, self._template)
        self._entries.append(segments.save(self.store, self.model_tag, built))


def _current(store: ObjectStore, model_tag: str) -> tuple[Manifest, str | None, int]:
    """What to merge in, the ETag to replace and the last version, damaged or not."""
    try:
        newest = manifests.read_newest_valid(store, model_tag, lambda manifest: None)
        return newest.manifest, newest.etag, newest.last_version
    except CorruptIndex:
        info = store.head(layout.manifest_key(model_tag))
        archived = manifests.archived_versions(store, model_tag)
        return Manifest(model_tag), info.etag if info else None, archived[0] if archived else 0


def _rows(shard: shards.Shard, positions: list[int]) -> segments.Rows:
    return segments.Rows.of(
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
    tombstones: dict[str, float],
    flat_max: int,
) -> tuple[SegmentEntry, ...]:
    """A flat segment of the rows that shards folded in during the rebuild add."""
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
    built = segments.build_flat(np.concatenate(vectors), segments.Rows.concat(parts))
    return (segments.save(store, model_tag, built),)


def _with_dead(
    store: ObjectStore, model_tag: str, entry: SegmentEntry, tombstone_hashes: np.ndarray
) -> SegmentEntry:
    hashes = segments.load_hashes(store, model_tag, entry)
    return replace(entry, dead=int(np.isin(hashes, tombstone_hashes).sum()))


def command(model_tag: str | None, settings: Settings) -> int:
    """``pixsearch index rebuild``: rebuild, then print one line saying what is live now."""
    tag = model_tag or settings.model_tag
    store = ObjectStore.from_settings(settings)
    rebuilt = rebuild(store, tag, limits=Limits.from_settings(settings))
    kinds = ", ".join(f"{entry.kind} ({entry.count})" for entry in rebuilt.segments) or "empty"
    shard_count = len(folded.folded_ids(store, rebuilt))
    print(
        f"rebuilt index {tag} as version {rebuilt.version}: {rebuilt.vector_count} vectors "
        f"from {shard_count} shards; segments: {kinds}"
    )
    return 0

"""``pixsearch index rebuild``: a fresh index from every shard of a model tag.

For disaster recovery (a lost or damaged index) or after a model change: the
shards are the source of truth. Images no longer in the bucket are left out
and tombstoned (so a late event cannot bring them back); the result is
published as the next version over whatever is current.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from pixsearch import layout
from pixsearch.config import Settings
from pixsearch.embed import shard as shards
from pixsearch.embed.shard import Shard
from pixsearch.index import manifest as manifests
from pixsearch.index import segment as segments
from pixsearch.index.manifest import CorruptIndex, Manifest
from pixsearch.storage import ConflictError, ObjectStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


@dataclass
class LiveShards:
    """The shards of a model tag, read one at a time, with the rows still worth indexing:
    each image key once, and only while the image is in the bucket."""

    store: ObjectStore
    model_tag: str
    shard_ids: list[str] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)  # keys whose image is no longer stored

    def __post_init__(self) -> None:
        prefix = layout.embeddings_prefix(self.model_tag)
        self.shard_ids = sorted(
            layout.parse_shard_key(info.key)[1]
            for info in self.store.list(prefix)
            if info.key.endswith(layout.SHARD_SUFFIX)
        )

    def __iter__(self) -> Iterator[Shard]:
        """Each shard reduced to its live rows not seen in an earlier one (empty ones skipped)."""
        existing = {info.key for info in self.store.list(layout.IMAGES)}
        seen: set[str] = set()
        for shard_id in self.shard_ids:
            shard = shards.read(self.store, self.model_tag, shard_id)
            keep = []
            for position, row in enumerate(shard.rows):
                if row.key not in existing:
                    self.gone.add(row.key)
                elif row.key not in seen:
                    seen.add(row.key)
                    keep.append(position)
            if keep:
                rows = tuple(shard.rows[i] for i in keep)
                yield Shard(shard.shard_id, shard.model_tag, rows, shard.vectors[keep])


def rebuild(store: ObjectStore, model_tag: str, *, flat_max: int) -> Manifest:
    """Build one segment from all shards of ``model_tag`` and publish it as the next version."""
    source = LiveShards(store, model_tag)
    vectors: list[np.ndarray] = []
    parts: list[segments.Rows] = []
    for shard in source:
        vectors.append(shard.vectors)
        parts.append(segments.Rows.from_shard_rows(shard.rows))
    shard_ids, gone = source.shard_ids, source.gone
    dim = vectors[0].shape[1] if vectors else 0
    entries: tuple[manifests.SegmentEntry, ...] = ()
    if vectors:
        built, index_bytes, rows_bytes = segments.build(
            np.concatenate(vectors), segments.Rows.concat(parts), flat_max
        )
        segments.save(store, model_tag, built.entry, index_bytes, rows_bytes)
        entries = (built.entry,)
    for _ in range(MAX_ATTEMPTS):
        version, etag = _current_version(store, model_tag)
        rebuilt = Manifest(
            model_tag=model_tag,
            dim=dim,
            version=version + 1,
            segments=entries,
            shards=frozenset(shard_ids),
            tombstones=frozenset(gone),
        )
        try:
            manifests.publish(store, rebuilt, etag)
        except ConflictError:
            continue
        log.info("rebuilt %s v%d: %d vectors", model_tag, rebuilt.version, rebuilt.vector_count)
        return rebuilt
    raise RuntimeError(f"could not publish the rebuilt {model_tag} index: it kept changing")


def _current_version(store: ObjectStore, model_tag: str) -> tuple[int, str | None]:
    """The version to publish after and the ETag to replace, damaged manifest or not."""
    info = store.head(layout.manifest_key(model_tag))
    archived = manifests.archived_versions(store, model_tag)
    newest = archived[0] if archived else 0
    if info is None:
        return newest, None
    try:
        current, etag = manifests.read(store, model_tag)
        return max(current.version, newest), etag
    except CorruptIndex:
        return newest, info.etag


def command(model_tag: str | None, settings: Settings, engine: str | None = None) -> int:
    """``pixsearch index rebuild``: rebuild, then print one line saying what is live now.

    ``engine`` (default: the configured one) names the vector store to build, so a user
    can switch engines from the embedding shards without embedding again.
    """
    tag = model_tag or settings.model_tag
    store = ObjectStore.from_settings(settings)
    if (engine or settings.vector_store) == "lancedb":
        from pixsearch.vectorstore.lance_store import LanceStore

        lance = LanceStore(settings, store, tag)
        source = LiveShards(store, tag)
        count = lance.rebuild(source, source.gone)
        print(
            f"rebuilt LanceDB index {tag} at {lance.uri}: {count} vectors from "
            f"{len(source.shard_ids)} shards"
        )
        return 0
    rebuilt = rebuild(store, tag, flat_max=settings.index_flat_max)
    kinds = ", ".join(f"{entry.kind} ({entry.count})" for entry in rebuilt.segments) or "empty"
    print(
        f"rebuilt index {tag} as version {rebuilt.version}: {rebuilt.vector_count} vectors "
        f"from {len(rebuilt.shards)} shards; segments: {kinds}"
    )
    return 0

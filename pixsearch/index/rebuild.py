"""``pixsearch index rebuild``: a fresh index from every shard of a model tag.

For disaster recovery (a lost or damaged index) or after a model change: the
shards are the source of truth. Images no longer in the bucket are left out
and tombstoned (so a late event cannot bring them back); the result is
published as the next version over whatever is current.
"""

from __future__ import annotations

import logging

import numpy as np

from pixsearch import layout
from pixsearch.config import Settings
from pixsearch.embed import shard as shards
from pixsearch.index import manifest as manifests
from pixsearch.index import segment as segments
from pixsearch.index.manifest import CorruptIndex, Manifest
from pixsearch.storage import ConflictError, ObjectStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


def rebuild(store: ObjectStore, model_tag: str, *, flat_max: int) -> Manifest:
    """Build one segment from all shards of ``model_tag`` and publish it as the next version."""
    prefix = layout.embeddings_prefix(model_tag)
    shard_ids = sorted(
        layout.parse_shard_key(info.key)[1]
        for info in store.list(prefix)
        if info.key.endswith(layout.SHARD_SUFFIX)
    )
    existing = {info.key for info in store.list(layout.IMAGES)}
    vectors: list[np.ndarray] = []
    parts: list[segments.Rows] = []
    seen: set[str] = set()
    gone: set[str] = set()
    dim = 0
    for shard_id in shard_ids:
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
            parts.append(segments.Rows.from_shard_rows([shard.rows[i] for i in keep]))
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

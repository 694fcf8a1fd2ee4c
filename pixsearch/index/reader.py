"""Reading the published index: a validated, immutable snapshot that answers top-k queries.

A manifest or segment that fails validation is refused; the newest archived
version that validates is served instead (with the ETag of the refused one, so
a caller polling :func:`manifest_etag` waits for the next publication rather
than retrying the damaged one).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import faiss
import numpy as np

from pixsearch import layout
from pixsearch.index import manifest as manifests
from pixsearch.index import segment as segments
from pixsearch.index.manifest import CorruptIndex, Manifest
from pixsearch.storage import ObjectStore

__all__ = [
    "CorruptIndex",
    "Hit",
    "IndexNotFound",
    "IndexSnapshot",
    "load_snapshot",
    "manifest_etag",
]

log = logging.getLogger(__name__)


class IndexNotFound(LookupError):
    """No manifest yet for this model tag."""


@dataclass(frozen=True)
class Hit:
    key: str
    score: float
    source_url: str | None
    width: int | None
    height: int | None


class _LiveSegment:
    """A loaded segment with the FAISS search parameters that skip its tombstoned rows."""

    def __init__(self, loaded: segments.Segment, tombstone_hashes: np.ndarray) -> None:
        self.segment = loaded
        dead = np.flatnonzero(np.isin(loaded.hashes, tombstone_hashes)).astype(np.int64)
        self.live = loaded.entry.count - len(dead)
        # FAISS keeps raw pointers to selectors: hold them as long as the parameters.
        self._dead = faiss.IDSelectorBatch(dead) if len(dead) else None
        self._selector = faiss.IDSelectorNot(self._dead) if self._dead is not None else None
        self.params = segments.search_parameters(loaded.entry, self._selector)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.segment.index.search(queries, min(k, self.live), params=self.params)


class IndexSnapshot:
    """One published version of an index, searchable from any number of threads."""

    def __init__(
        self,
        manifest: Manifest,
        etag: str,
        parts: list[_LiveSegment],
        fallback_reason: str | None = None,
    ) -> None:
        self.version = manifest.version
        # Set when the current manifest was refused and this is an older, valid version.
        self.fallback_reason = fallback_reason
        self.etag = etag
        self.model_tag = manifest.model_tag
        self.dim = manifest.dim
        self.vector_count = sum(part.live for part in parts)
        self.segment_count = len(parts)
        self.loaded_at = time.time()
        self.reused_count = 0  # segments taken over from the previous snapshot
        self._segments = {part.segment.entry.id: part.segment for part in parts}
        self._parts = [part for part in parts if part.live > 0]

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """Top ``k`` live hits per query row, best score first, merged over all segments."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.segment_count and queries.shape[1] != self.dim:
            raise ValueError(f"queries have dim {queries.shape[1]}, the index has {self.dim}")
        if k <= 0 or not self._parts:
            return [[] for _ in range(len(queries))]
        found = [(part, *part.search(queries, k)) for part in self._parts]
        results = []
        for row in range(len(queries)):
            candidates = [
                (float(score), part, int(position))
                for part, scores, positions in found
                for score, position in zip(scores[row], positions[row], strict=True)
                if position >= 0
            ]
            candidates.sort(key=lambda item: item[0], reverse=True)
            results.append(
                [_hit(part, position, score) for score, part, position in candidates[:k]]
            )
        return results


def manifest_etag(store: ObjectStore, model_tag: str) -> str | None:
    """The current manifest's ETag (one HEAD), None if there is no index yet."""
    info = store.head(layout.manifest_key(model_tag))
    return info.etag if info else None


def load_snapshot(
    store: ObjectStore, model_tag: str, previous: IndexSnapshot | None = None
) -> IndexSnapshot:
    """The current index, validated; falls back to the newest valid archived version.

    Segments are immutable: those ``previous`` already holds are taken over (with the
    new version's tombstones), only new ones are read, and the ones that left go with
    ``previous``. :class:`IndexNotFound` if nothing was published for ``model_tag``;
    :class:`CorruptIndex` if neither the current version nor a recent one validates.
    """
    held = previous._segments if previous is not None and previous.model_tag == model_tag else {}
    newest = manifests.read_newest_valid(
        store, model_tag, lambda manifest: _load_parts(store, manifest, held)
    )
    if newest.etag is None:
        key = layout.manifest_key(model_tag)
        raise IndexNotFound(f"no index for model {model_tag!r} yet ({key} does not exist)")
    reason = None
    if newest.refused is not None:
        reason = (
            f"the current index was refused ({newest.refused}); "
            f"serving archived v{newest.manifest.version}"
        )
    snapshot = IndexSnapshot(newest.manifest, newest.etag, newest.loaded, reason)
    snapshot.reused_count = sum(entry.id in held for entry in newest.manifest.segments)
    return snapshot


def _load_parts(
    store: ObjectStore, manifest: Manifest, held: dict[str, segments.Segment]
) -> list[_LiveSegment]:
    tombstone_hashes = segments.key_hashes(manifest.tombstones)
    parts = []
    for entry in manifest.segments:
        loaded = held.get(entry.id)
        if loaded is None:
            loaded = segments.load(store, manifest.model_tag, entry, manifest.dim)
        else:  # the same immutable objects; only the entry's dead count may differ
            loaded = segments.Segment(entry, loaded.index, loaded.rows, loaded.hashes)
        parts.append(_LiveSegment(loaded, tombstone_hashes))
    return parts


def _hit(part: _LiveSegment, position: int, score: float) -> Hit:
    key, source_url, width, height = part.segment.rows.row(position)
    return Hit(key=key, score=score, source_url=source_url, width=width, height=height)

"""The ``faiss`` engine: the index stage's log-structured segments behind the port.

Writes go through :func:`pixsearch.index.update.apply` (one manifest
transaction each); search through :class:`~pixsearch.search.index_cache.IndexCache`,
which keeps the published segments in memory and reloads on a new manifest.
Filters are applied inside each segment's FAISS search (an ID selector over
the matching rows); captions are ranked by a BM25 index over the loaded rows.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

import numpy as np

from pixsearch.config import Settings
from pixsearch.index import update
from pixsearch.index.compaction import Limits
from pixsearch.index.reader import IndexSnapshot
from pixsearch.search.index_cache import IndexCache
from pixsearch.shards import Shard
from pixsearch.storage import ObjectStore
from pixsearch.vectorstore.filters import Filter
from pixsearch.vectorstore.fusion import candidate_pool, fuse
from pixsearch.vectorstore.keywords import KeywordIndex
from pixsearch.vectorstore.port import Description, DimensionMismatch, Found, Hit


class FaissStore:
    engine = "faiss"

    def __init__(self, settings: Settings, store: ObjectStore, model_tag: str) -> None:
        self.settings = settings
        self.store = store
        self.model_tag = model_tag
        self.cache = IndexCache(store, model_tag, settings.search_refresh_s)
        # Keyed weakly (and holding no reference back): a caption index goes with its
        # snapshot, so it never keeps a swapped-out version and its segments in memory.
        self._captions: weakref.WeakKeyDictionary[IndexSnapshot, _Captions] = (
            weakref.WeakKeyDictionary()
        )
        self._captions_lock = threading.Lock()

    def add(self, shards: Sequence[Shard]) -> None:
        self._apply(shards, [])

    def remove(self, keys: Sequence[str]) -> None:
        self._apply([], keys)

    def search(
        self, vector: np.ndarray, k: int, where: Filter | None = None, text: str | None = None
    ) -> Found:
        snapshot = self.cache.current()
        if snapshot.segment_count and vector.shape[-1] != snapshot.dim:
            raise DimensionMismatch(
                f"index {self.model_tag} has {snapshot.dim}-d vectors but the query is "
                f"{vector.shape[-1]}-d; rebuild the index"
            )
        pool = candidate_pool(k) if text else k
        clip = [
            Hit(hit.key, float(hit.score), hit.meta)
            for hit in snapshot.search(vector.reshape(1, -1), pool, where)[0]
        ]
        if not text:
            return Found(clip, snapshot.version)
        captions = self._caption_index(snapshot).search(vector, text, pool, where)
        return Found(fuse(clip, captions, k), snapshot.version)

    def count(self) -> int:
        return self.cache.current().vector_count

    def describe(self) -> Description:
        state = self.cache.refresh_if_due(wait=False)
        snapshot = state.snapshot
        return Description(
            engine=self.engine,
            version=snapshot.version if snapshot else None,
            vector_count=snapshot.vector_count if snapshot else None,
            segment_count=snapshot.segment_count if snapshot else None,
            loaded_at=state.loaded_at,
            checked_at=state.checked_at,
            problem=state.problem,
        )

    def refresh(self) -> None:
        """Load the newest version now (a background reload in progress is waited for)."""
        self.cache.wait_for_refresh()
        self.cache.refresh_if_due()

    def _apply(self, shards: Sequence[Shard], removed: Sequence[str]) -> None:
        update.apply(
            self.store,
            self.model_tag,
            shards,
            removed,
            limits=Limits.from_settings(self.settings),
            image_exists=lambda key: self.store.head(key) is not None,
        )

    def _caption_index(self, snapshot: IndexSnapshot) -> _Captions:
        with self._captions_lock:
            captions = self._captions.get(snapshot)
            if captions is None:
                captions = self._captions[snapshot] = _Captions(snapshot)
            return captions


class _Captions:
    """The captions of one snapshot's live rows, searchable by keyword."""

    def __init__(self, snapshot: IndexSnapshot) -> None:
        self.refs: list[tuple[int, int]] = []
        texts: list[str] = []
        for number, part in enumerate(snapshot.parts):
            for position, caption in enumerate(part.segment.rows.column("caption")):
                if caption and part.alive[position]:
                    self.refs.append((number, position))
                    texts.append(caption)
        self.parts = snapshot.parts
        self.index = KeywordIndex(texts)

    def search(self, vector: np.ndarray, text: str, limit: int, where: Filter | None) -> list[Hit]:
        if not len(self.index):
            return []

        def allowed(document: int) -> bool:
            number, position = self.refs[document]
            return where is None or where.matches(self.parts[number].segment.rows.meta(position))

        hits = []
        for document, _ in self.index.search(text, limit, allowed):
            number, position = self.refs[document]
            part = self.parts[number]
            score = float(np.dot(part.vector(position), vector))
            hits.append(
                Hit(part.segment.rows.keys[position], score, part.segment.rows.meta(position))
            )
        return hits

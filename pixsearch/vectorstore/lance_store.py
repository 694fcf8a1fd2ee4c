"""The ``lancedb`` engine: one LanceDB table per model in the bucket, queried where it lies.

Writers use LanceDB's own commits (concurrent index runs retry their merge on
conflict), its own deletes and its own indexes (:mod:`.lance_indexes`); the
tables and their creation are :mod:`.lance_tables`, the queries
:mod:`.lance_query`.

Search opens the table and keeps that version until a check (at most every
``search_refresh_s``) finds a newer one that opens; a version that cannot be
read leaves the previous one serving. A query that fails on the version served
(its files removed with the versions older than ``index_grace_s``) is answered
from the newest version instead.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from pixsearch.config import Settings
from pixsearch.shards import Shard
from pixsearch.storage import ObjectStore
from pixsearch.vectorstore.filters import Filter
from pixsearch.vectorstore.fusion import candidate_pool, fuse
from pixsearch.vectorstore.lance_indexes import (
    has_index,
    index_cache_warning,
    maintain,
    search_probes,
    train_vector_index,
)
from pixsearch.vectorstore.lance_query import caption_hits, vector_hits
from pixsearch.vectorstore.lance_tables import (
    REMOVED,
    ROWS,
    LanceTables,
    arrow_rows,
    chunks,
    key_in,
    row_schema,
    unique_rows,
    vector_dim,
)
from pixsearch.vectorstore.port import Description, DimensionMismatch, Found, StoreUnavailable
from pixsearch.vectorstore.rows import RowMeta

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 5


class LanceStore:
    engine = "lancedb"

    def __init__(self, settings: Settings, store: ObjectStore, model_tag: str) -> None:
        self.settings = settings
        self.store = store
        self.model_tag = model_tag
        self.tables = LanceTables(settings, store, model_tag)
        self.uri = self.tables.uri
        self._served: Any = None  # the table version search answers from
        self._probes: int | None = None  # IVF partitions its queries search (None: exact)
        self._captioned = False  # whether the served version has a caption index
        self._loaded_at: float | None = None
        self._checked_at: float | None = None
        self._problem: str | None = None
        self._lock = threading.Lock()

    # Writing (the index stage)

    def add(self, shards: Sequence[Shard]) -> None:
        keys, vectors, metas = unique_rows(shards)
        if keys:
            self._write(lambda: self._add(keys, vectors, metas))

    def remove(self, keys: Sequence[str]) -> None:
        gone = sorted({key for key in keys if self.store.head(key) is None})
        if gone:
            self._write(lambda: self._remove(gone))

    def _write(self, action: Callable[[], None]) -> None:
        try:
            _committing(action)
        except (DimensionMismatch, StoreUnavailable):
            raise
        except Exception as error:
            raise StoreUnavailable(
                f"cannot write LanceDB table {self.uri}/{ROWS}: {error}. If its newest version "
                "is damaged, `pixsearch index rebuild --vector-store lancedb` rebuilds it "
                "from the embedding shards"
            ) from error

    def _add(self, keys: list[str], vectors: np.ndarray, metas: list[RowMeta]) -> None:
        table = self.tables.rows(vectors.shape[1])
        removed = self.tables.removed_among(keys)
        revived = [key for key in removed if self.store.head(key) is not None]
        if revived:
            self.tables.removed().delete(key_in(revived))
        gone = removed - set(revived)
        wanted = [i for i, key in enumerate(keys) if key not in gone]
        if not wanted:
            return
        data = arrow_rows([metas[i] for i in wanted], vectors[wanted], table.schema)
        table.merge_insert("key").when_not_matched_insert_all().execute(data)
        # A removal that committed while this merge ran: its rows go again.
        late = self.tables.removed_among([keys[i] for i in wanted])
        for chunk in chunks(sorted(late)):
            table.delete(key_in(chunk))
        maintain(table, self.settings)

    def _remove(self, gone: list[str]) -> None:
        removed = self.tables.removed()
        data = pa.table({"key": pa.array(gone, pa.string())})
        removed.merge_insert("key").when_not_matched_insert_all().execute(data)
        table = self.tables.open(ROWS)
        if table is not None:
            for chunk in chunks(gone):
                table.delete(key_in(chunk))

    def rebuild(self, shards: Iterable[Shard], gone: set[str]) -> int:
        """Replace the table with the rows of ``shards`` (streamed, one shard at a time)
        and record ``gone`` keys as removed; returns the row count.

        The first batch overwrites the table as one new version (older versions stay
        readable until cleaned up), so a damaged newest version is healed too.
        """
        db = self.tables.connect()
        table = None
        for shard in shards:
            keys, vectors, metas = unique_rows([shard])
            if table is None:
                schema = row_schema(vectors.shape[1])
                data = arrow_rows(metas, vectors, schema)
                table = db.create_table(ROWS, data, schema=schema, mode="overwrite")
            else:
                table.add(arrow_rows(metas, vectors, table.schema))
        removed = pa.table({"key": pa.array(sorted(gone), pa.string())})
        db.create_table(REMOVED, removed, mode="overwrite")
        if table is None:
            return 0
        maintain(table, self.settings, rebuilt=True)
        return table.count_rows()

    def retrain(self) -> tuple[int, float]:
        """Train the vector index anew on every row, however long it takes (``pixsearch
        index retrain``, for a table an index run may no longer train); returns the rows
        and the seconds taken. Rows committed meanwhile join it at the next index run."""
        table = self.tables.open(ROWS)
        if table is None:
            raise StoreUnavailable(f"no LanceDB table at {self.uri}/{ROWS}: nothing indexed yet")
        rows = table.count_rows()
        return rows, train_vector_index(table, rows)

    # Reading (the search function)

    def search(
        self, vector: np.ndarray, k: int, where: Filter | None = None, text: str | None = None
    ) -> Found:
        table = self._current()
        if vector.shape[-1] != vector_dim(table.schema):
            raise DimensionMismatch(
                f"index {self.model_tag} has {vector_dim(table.schema)}-d vectors but the "
                f"query is {vector.shape[-1]}-d; rebuild the index"
            )
        sql = where.to_sql() if where is not None else None
        try:
            return self._search(table, vector, k, sql, text)
        except (OSError, RuntimeError, ValueError):
            self.refresh()
            if self._served is table:
                raise
            log.info(
                "version %d was removed; answering from %d", table.version, self._served.version
            )
            return self._search(self._served, vector, k, sql, text)

    def _search(
        self, table: Any, vector: np.ndarray, k: int, sql: str | None, text: str | None
    ) -> Found:
        hybrid = bool(text) and self._captioned  # no captions: hybrid is the CLIP ranking
        pool = candidate_pool(k) if hybrid else k
        clip = vector_hits(table, vector, pool, sql, self.settings, self._probes)
        if not hybrid:
            return Found(clip, table.version)
        captions = caption_hits(table, vector, text, pool, sql)
        return Found(fuse(clip, captions, k), table.version)

    def count(self) -> int:
        return self._current().count_rows()

    def describe(self) -> Description:
        if self._refresh_due():
            self.refresh()
        table = self._served
        if table is None:
            return Description(self.engine, checked_at=self._checked_at, problem=self._problem)
        return Description(
            engine=self.engine,
            version=table.version,
            vector_count=table.count_rows(),
            segment_count=table.stats()["fragment_stats"]["num_fragments"],
            loaded_at=self._loaded_at,
            checked_at=self._checked_at,
            problem=self._problem,
            indexed=has_index(table, "vector"),
        )

    def refresh(self) -> None:
        """Serve the newest version if it opens; otherwise keep the one served and say why."""
        with self._lock:
            self._checked_at = time.monotonic()
            try:
                table = self.tables.open(ROWS)
            except Exception as error:  # noqa: BLE001 - a bad version must not stop search
                self._problem = f"cannot open LanceDB table {self.uri}/{ROWS}: {error}"
                log.warning("%s (serving version %s)", self._problem, self._served_version())
                return
            if table is None:
                self._problem = (
                    f"no index for model {self.model_tag} yet (nothing has been indexed)"
                )
                return
            if self._served is None or table.version != self._served.version:
                self._probes = search_probes(table, self.settings)
                self._captioned = has_index(table, "caption")
                self._warn_if_cache_too_small(table)
                self._served, self._loaded_at = table, time.time()
                log.info(
                    "serving %s version %d (queries search %s IVF partitions)",
                    self.uri,
                    table.version,
                    self._probes if self._probes is not None else "no",
                )
            self._problem = None

    def _warn_if_cache_too_small(self, table: Any) -> None:
        if self._probes is None:
            return
        dim = vector_dim(table.schema)
        warning = index_cache_warning(table.count_rows(), dim, self.settings.lance_index_cache_mb)
        if warning:
            log.warning("%s: %s", self.uri, warning)

    def _served_version(self) -> int | None:
        return self._served.version if self._served is not None else None

    def _refresh_due(self) -> bool:
        checked = self._checked_at
        if self._served is None or checked is None:
            return True
        return time.monotonic() - checked >= self.settings.search_refresh_s

    def _current(self) -> Any:
        if self._refresh_due():
            self.refresh()
        if self._served is None:
            raise StoreUnavailable(self._problem or f"no index for model {self.model_tag} yet")
        return self._served


def _committing(action: Callable[[], None]) -> None:
    """Run ``action`` again (on the newest version) when a concurrent commit conflicts.

    LanceDB retries compatible commits itself; this covers the ones it reports as
    incompatible (e.g. a merge racing an index rewrite), which are safe to redo
    because every write here is idempotent.
    """
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            action()
            return
        except (RuntimeError, OSError) as error:
            text = str(error).lower()
            if attempt == COMMIT_ATTEMPTS or not ("conflict" in text or "incompatible" in text):
                raise
            log.info("LanceDB commit conflict (attempt %d), redoing: %s", attempt, error)
            time.sleep(random.uniform(0.05, 0.2) * attempt)
